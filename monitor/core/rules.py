"""Stuck-agent rules: a condition on an agent's presence and routing status held for too long.

A rule names the presences and/or routing statuses it looks for (None: any), a threshold, and
optionally a selector (which agents), local hours when it applies, and an action (a target
presence the daemon resolves and applies, audited like any other change).

Hysteresis, per (rule, agent):

- The condition *begins* when it is first seen true, at the latest `since_ms` of the states the
  rule constrains (presence and/or routing: "On Queue with routing OFF_QUEUE" began when the later
  of the two did). While it stays true across evaluations that start is kept, even when the state
  changes within the allowed sets (Available -> Busy is still "off queue in a working presence").
- It *fires* once, when `now - start >= threshold`.
- A firing rule *clears* once the condition has been false for `clear_after_s`. True again before
  that is the same episode: no new fire, the start is kept. So an agent flapping between
  NOT_RESPONDING and IDLE faster than `clear_after_s` is one alert, not one per flap.
- A condition that goes false before firing is simply dropped; true again starts afresh.
- Outside the rule's hours the condition is false.
- An agent no longer passed in (left the roster) is cleared at once and forgotten.

The engine holds only (rule, agent) pairs whose condition is true or whose firing is waiting to
clear; evaluating 20,000 agents against the default rules is a few set lookups per agent and rule.
Times are epoch milliseconds passed in; time zones are passed in as tzinfo objects, so no I/O
happens here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from monitor.core.model import Agent, Presence, RoutingStatus, StatusState
from monitor.core.selectors import (
    Selector,
    format_duration,
    parse_duration,
    presence_value,
    routing_value,
)

__all__ = [
    "DEFAULT_RULES",
    "Hours",
    "Rule",
    "RuleEngine",
    "RuleError",
    "RuleEvent",
    "describe_rules",
    "load",
]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DAY_MINUTES = 24 * 60
# Agents a step of RuleEngine.steps() takes at most: with their log lines, a few milliseconds.
STEP_AGENTS = 250


class RuleError(ValueError):
    """A rule that cannot be understood; the message starts with the offending key."""


# --- hours ---------------------------------------------------------------------------------------


def _minutes(text: Any, key: str, *, end: bool) -> int:
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise RuleError(f'{key}: expected a local time "HH:MM", got {text!r}')
    hours, minutes = int(match.group(1)), int(match.group(2))
    # "24:00" is the end of the day, so that "20:00"-"24:00" needs no wrap.
    if end and (hours, minutes) == (24, 0):
        return _DAY_MINUTES
    if hours > 23 or minutes > 59:
        raise RuleError(f"{key}: {text!r} is not a time of day")
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class Hours:
    """A daily local window [start, end) in a time zone; it crosses midnight when end < start
    ("22:00"-"06:00"). Wall-clock minutes decide, so a DST change moves the window with the
    clocks, as a shift plan does."""

    start: str
    end: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        start = _minutes(self.start, "hours.from", end=False)
        end = _minutes(self.end, "hours.to", end=True)
        if start == end:
            raise RuleError(
                f"hours.to: the window {self.start}-{self.end} is empty; "
                "leave hours out for a rule that always applies"
            )
        if not isinstance(self.timezone, str) or not self.timezone.strip():
            raise RuleError(f"hours.timezone: expected a time zone name, got {self.timezone!r}")

    @property
    def start_minute(self) -> int:
        return _minutes(self.start, "hours.from", end=False)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end, "hours.to", end=True)

    def contains(self, now_ms: int, tz: tzinfo) -> bool:
        """Whether the local wall time of `now_ms` in `tz` is inside the window."""
        local = (_EPOCH + now_ms * _MS).astimezone(tz)
        minute = local.hour * 60 + local.minute
        start, end = self.start_minute, self.end_minute
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end

    @classmethod
    def from_mapping(cls, data: Any) -> Hours:
        """`{from = "08:00", to = "20:00", timezone = "Europe/Berlin"}` (timezone defaults to UTC)."""
        if not isinstance(data, Mapping):
            raise RuleError(
                f'hours: expected a table like {{from = "08:00", to = "20:00"}}, got {data!r}'
            )
        unknown = sorted(str(k) for k in data if k not in ("from", "to", "timezone"))
        if unknown:
            raise RuleError(f"hours.{unknown[0]}: unknown setting; known are from, to, timezone")
        for key in ("from", "to"):
            if key not in data:
                raise RuleError(f'hours.{key}: required, e.g. "08:00"')
        return cls(data["from"], data["to"], data.get("timezone", "UTC"))

    def describe(self) -> str:
        return f"{self.start}-{self.end} {self.timezone}"


# --- rules ---------------------------------------------------------------------------------------


def _statuses(values: Any, key: str, convert: Any) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple | set | frozenset) or not values:
        raise RuleError(f"{key}: expected a non-empty list of names, got {values!r}")
    try:
        return frozenset(convert(v) for v in values)
    except ValueError as exc:
        raise RuleError(f"{key}: {exc}") from None


def _seconds(value: Any, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleError(f"{key}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Rule:
    """A stuck-agent condition. `presences`/`routing` None means any value of that kind; at least
    one of them is constrained. `action` is a target presence as people name it (resolved by the
    daemon), or None."""

    name: str
    presences: frozenset[str] | None
    routing: frozenset[str] | None
    threshold_s: float
    selector: Selector | None = None
    hours: Hours | None = None
    clear_after_s: float = 60.0
    action: str | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise RuleError(
                f"name: a short name of letters, digits, '.', '_' or '-' is required, got {self.name!r}"
            )
        put = object.__setattr__
        put(self, "presences", _statuses(self.presences, "presence", presence_value))
        put(self, "routing", _statuses(self.routing, "routing_status", routing_value))
        if self.presences is None and self.routing is None:
            raise RuleError("presence: a rule needs presence and/or routing_status to look for")
        for key, value in (("threshold", self.threshold_s), ("clear_after", self.clear_after_s)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RuleError(f"{key}: expected seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise RuleError(f"{key}: expected seconds >= 0, got {value!r}")
        if self.action is not None and (
            not isinstance(self.action, str) or not self.action.strip()
        ):
            raise RuleError(
                f'action: expected a presence name such as "On Queue", got {self.action!r}'
            )
        if not isinstance(self.enabled, bool):
            raise RuleError(f"enabled: true or false, got {self.enabled!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: Rule | None = None) -> Rule:
        """A rule from a `[[rules]]` table::

            name = "long_break", presence = ["Break"], routing_status = [...], threshold = "30m",
            select = {...}, hours = {from = "08:00", to = "20:00", timezone = "Europe/Berlin"},
            clear_after = "1m", action = "On Queue", enabled = true

        With `base` (a default rule of the same name), keys left out keep the base's values, so
        `{name = "long_break", threshold = "45m"}` only moves the threshold. RuleError names the key.
        """
        if not isinstance(data, Mapping):
            raise RuleError(f"name: expected a table, got {type(data).__name__}")
        known = (
            "name", "presence", "routing_status", "threshold", "select", "hours", "clear_after",
            "action", "enabled",
        )  # fmt: skip
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise RuleError(f"{unknown[0]}: unknown setting; known are {', '.join(known)}")
        name: Any = data.get("name", base.name if base else None)
        if base is None and "threshold" not in data:
            raise RuleError('threshold: required, e.g. "15m"')
        presences = (
            _statuses(data["presence"], "presence", presence_value)
            if "presence" in data
            else (base.presences if base else None)
        )
        routing = (
            _statuses(data["routing_status"], "routing_status", routing_value)
            if "routing_status" in data
            else (base.routing if base else None)
        )
        threshold = (
            _seconds(data["threshold"], "threshold")
            if "threshold" in data
            else _base_threshold(base)
        )
        clear_after = (
            _seconds(data["clear_after"], "clear_after")
            if "clear_after" in data
            else (base.clear_after_s if base else 60.0)
        )
        selector = base.selector if base else None
        if "select" in data:
            try:
                selector = Selector.from_mapping(data["select"])
            except ValueError as exc:
                raise RuleError(f"select.{exc}") from None
            if selector.everyone:
                selector = None
        hours = (
            Hours.from_mapping(data["hours"]) if "hours" in data else (base.hours if base else None)
        )
        action = data.get("action", base.action if base else None)
        enabled = data.get("enabled", True)
        return cls(
            name=name,  # checked in __post_init__
            presences=presences,
            routing=routing,
            threshold_s=threshold,
            selector=selector,
            hours=hours,
            clear_after_s=clear_after,
            action=action,
            enabled=enabled,
        )

    def describe(self) -> str:
        """E.g. `presence=AVAILABLE,BUSY routing=OFF_QUEUE for 15m`, for logs."""
        parts = []
        if self.presences is not None:
            parts.append(f"presence={','.join(sorted(self.presences))}")
        if self.routing is not None:
            parts.append(f"routing={','.join(sorted(self.routing))}")
        parts.append(f"for {format_duration(self.threshold_s)}")
        if self.selector is not None:
            parts.append(f"[{self.selector.describe()}]")
        if self.hours is not None:
            parts.append(f"during {self.hours.describe()}")
        return " ".join(parts)


def _base_threshold(base: Rule | None) -> float:
    assert base is not None  # from_mapping requires threshold without a base
    return base.threshold_s


_P = Presence
_R = RoutingStatus

DEFAULT_RULES: tuple[Rule, ...] = (
    # Offered an interaction and did not answer: Genesys stops routing to the agent.
    Rule("not_responding", None, frozenset({_R.NOT_RESPONDING}), 120),
    # An interaction no one can still be handling: a ghost left behind by a client crash.
    Rule("ghost_interaction", None, frozenset({_R.INTERACTING}), 7200),
    # Working presence, but not taking queue calls; OFF_QUEUE, because an agent who went
    # Available while finishing an interaction stays INTERACTING until it is done.
    Rule("off_queue_working", frozenset({_P.AVAILABLE, _P.BUSY}), frozenset({_R.OFF_QUEUE}), 900),
    Rule("long_break", frozenset({_P.BREAK}), None, 1800),
    Rule("long_meal", frozenset({_P.MEAL}), None, 3600),
    # On Queue should mean routable; OFF_QUEUE beside it is an inconsistent state.
    Rule("on_queue_off_queue", frozenset({_P.ON_QUEUE}), frozenset({_R.OFF_QUEUE}), 60),
)


def load(
    tables: Iterable[Mapping[str, Any]],
    *,
    defaults: bool = True,
    known_zones: Container[str] | None = None,
) -> tuple[Rule, ...]:
    """The enabled rules from `[[rules]]` tables, on top of DEFAULT_RULES (unless `defaults` is
    false): a table named like a default overrides it key by key (`enabled = false` turns it off),
    other names add rules. `known_zones`, when given, checks the hours' time zone names (the core
    reads no tz database itself). RuleError("rules[n].key: ...") for the first bad table."""
    rules: dict[str, Rule] = {r.name: r for r in DEFAULT_RULES} if defaults else {}
    seen: set[str] = set()
    for n, table in enumerate(tables):
        try:
            name = table.get("name") if isinstance(table, Mapping) else None
            if isinstance(name, str) and name in seen:
                raise RuleError(f"name: {name!r} is configured twice")
            base = rules.get(name) if isinstance(name, str) else None
            rule = Rule.from_mapping(table, base)
            if rule.hours and known_zones is not None and rule.hours.timezone not in known_zones:
                raise RuleError(f"hours.timezone: unknown time zone {rule.hours.timezone!r}")
        except RuleError as exc:
            raise RuleError(f"rules[{n}].{exc}") from None
        seen.add(rule.name)
        rules[rule.name] = rule
    return tuple(r for r in rules.values() if r.enabled)


# --- the engine ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """A rule started or stopped firing for an agent. `since_ms` is when the condition began,
    `at_ms` the evaluation that decided it."""

    kind: Literal["fire", "clear"]
    rule: str
    agent_id: str
    since_ms: int
    at_ms: int


_Row = tuple[Agent, StatusState | None, StatusState | None]


def _candidates(
    rows: list[_Row], presences: frozenset[str] | None, routing: frozenset[str] | None
) -> list[_Row]:
    """The rows whose presence and routing status are among the rule's (None: any); one
    comprehension per shape, as this filter runs over every agent for every rule."""
    if presences is not None and routing is not None:
        return [
            row
            for row in rows
            if row[1] is not None
            and row[1].value in presences
            and row[2] is not None
            and row[2].value in routing
        ]
    if presences is not None:
        return [row for row in rows if row[1] is not None and row[1].value in presences]
    if routing is not None:
        return [row for row in rows if row[2] is not None and row[2].value in routing]
    return rows


def _start(rule: Rule, presence: StatusState | None, routing: StatusState | None) -> int:
    """When a condition just seen true began: the later start of the states the rule constrains
    (a constrained state is never None here, as None matches no set)."""
    if rule.routing is None or routing is None:
        assert presence is not None
        return presence.since_ms
    if rule.presences is None or presence is None:
        return routing.since_ms
    return max(presence.since_ms, routing.since_ms)


def _marks(
    rule: Rule, presence: StatusState | None, routing: StatusState | None
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """(value, since) of each state the rule constrains, to recognise a re-entry later."""
    return (
        None if rule.presences is None or presence is None else (presence.value, presence.since_ms),
        None if rule.routing is None or routing is None else (routing.value, routing.since_ms),
    )


def _reentered(
    before: tuple[tuple[str, int] | None, tuple[str, int] | None],
    now: tuple[tuple[str, int] | None, tuple[str, int] | None],
) -> bool:
    """Whether a constrained state is the same value as at the last evaluation but began again
    since: the agent left it and came back between evaluations (a new interaction, a second
    break), so the stretch being timed is the new one. A change to another allowed value
    (Available to Busy) keeps the condition's start."""
    return any(
        b is not None and n is not None and b[0] == n[0] and n[1] > b[1]
        for b, n in zip(before, now, strict=True)
    )


class _Episode:
    """One (rule, agent) whose condition is true, or whose firing waits to clear."""

    __slots__ = ("false_since", "fired", "marks", "round", "start")

    def __init__(
        self,
        start: int,
        round_: int,
        marks: tuple[tuple[str, int] | None, tuple[str, int] | None],
    ) -> None:
        self.start = start
        self.fired = False
        self.false_since: int | None = None
        self.round = round_
        self.marks = marks


class _Compiled:
    """A rule with what evaluate() needs at hand, and its episodes by agent id."""

    __slots__ = ("clear_ms", "episodes", "firing", "rule", "selector", "threshold_ms")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.selector = rule.selector
        self.threshold_ms = round(rule.threshold_s * 1000)
        self.clear_ms = round(rule.clear_after_s * 1000)
        self.episodes: dict[str, _Episode] = {}
        self.firing: set[str] = set()


class RuleEngine:
    """Evaluates rules against the agents' current states, with the hysteresis in the module
    docstring; returns the fire and clear events, and says who is firing what."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        active = [r for r in rules if r.enabled]
        names = [r.name for r in active]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RuleError(f"name: rule {duplicates[0]!r} is given more than once")
        self._compiled = [_Compiled(r) for r in active]
        self._round = 0
        # What could_match() looks for: the presences of rules on presence alone, the routing
        # statuses of rules on routing alone, and the (presence, routing) pairs of the others.
        self._presences = frozenset(
            p for r in active if r.routing is None for p in r.presences or ()
        )
        self._routing = frozenset(s for r in active if r.presences is None for s in r.routing or ())
        self._pairs = frozenset(
            (p, s)
            for r in active
            if r.presences is not None and r.routing is not None
            for p in r.presences
            for s in r.routing
        )

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(c.rule for c in self._compiled)

    def zone_names(self) -> frozenset[str]:
        """The time zones the rules' hours need in `evaluate(zones=...)`."""
        return frozenset(c.rule.hours.timezone for c in self._compiled if c.rule.hours)

    def resolve_names(
        self, queue_ids_by_name: Mapping[str, str], division_ids_by_name: Mapping[str, str]
    ) -> None:
        """Match the rules' queue and division names by id from now on (after a roster read)."""
        for c in self._compiled:
            if c.rule.selector is not None:
                c.selector = c.rule.selector.resolve(queue_ids_by_name, division_ids_by_name)

    def could_match(self, presence: str | None, routing: str | None) -> bool:
        """Whether some rule's condition holds for an agent with these values (None: unknown),
        time of day and selectors aside: an agent for whom none does need not be passed to
        evaluate() or steps() (see `present` there)."""
        return (
            presence in self._presences
            or routing in self._routing
            or (presence, routing) in self._pairs
        )

    def evaluate(
        self,
        now_ms: int,
        agents: Iterable[tuple[Agent, StatusState | None, StatusState | None]],
        zones: Mapping[str, tzinfo],
    ) -> list[RuleEvent]:
        """Evaluate every rule for every agent at `now_ms`; the fire and clear events it makes,
        in order. Agents not passed in are cleared and forgotten. ValueError (before anything
        changes) when `zones` lacks a time zone the rules' hours need."""
        return [event for step in self.steps(now_ms, agents, zones) for event in step]

    def steps(
        self,
        now_ms: int,
        agents: Iterable[tuple[Agent, StatusState | None, StatusState | None]],
        zones: Mapping[str, tzinfo],
        present: AbstractSet[str] | None = None,
    ) -> Iterator[list[RuleEvent]]:
        """evaluate(), a part at a time: each step yields the events of one rule's next
        STEP_AGENTS agents (at least one step per rule). A caller may do other work between steps
        (at 20,000 agents the rules take tens of milliseconds each), and may call forget() or the
        read methods then: the rules and agents not yet stepped still hold the previous
        evaluation's outcome.

        `present`, when given, holds the id of every watched agent, and `agents` need only hold
        those for whom could_match() is true: the others are judged false (their firings clear
        after the rule's clear delay), and only agents missing from `present` count as gone."""
        missing = sorted(self.zone_names() - zones.keys())
        if missing:
            raise ValueError(
                f"time zone {missing[0]!r} is needed by the rules' hours but not given"
            )
        self._round += 1
        round_ = self._round
        rows = list(agents)
        if present is None:
            present = {row[0].id for row in rows}
        for c in self._compiled:
            yield from self._rule_steps(c, now_ms, round_, rows, present, zones)

    @staticmethod
    def _rule_steps(
        c: _Compiled,
        now_ms: int,
        round_: int,
        rows: list[_Row],
        present: AbstractSet[str],
        zones: Mapping[str, tzinfo],
    ) -> Iterator[list[RuleEvent]]:
        """One rule's part of steps(): its episodes moved on to `round_`, and its events, in
        steps of at most STEP_AGENTS agents."""
        events: list[RuleEvent] = []
        rule = c.rule
        episodes = c.episodes
        if rule.hours is not None and not rule.hours.contains(now_ms, zones[rule.hours.timezone]):
            hits = []
        else:
            hits = _candidates(rows, rule.presences, rule.routing)
        selector = c.selector
        # Condition true: begin, or continue, an episode; fire once past the threshold.
        for count, (agent, presence, routing) in enumerate(hits, 1):
            if count % STEP_AGENTS == 0:
                yield events
                events = []
            if selector is not None and not selector.matches(agent, presence, routing, now_ms):
                continue
            agent_id = agent.id
            episode = episodes.get(agent_id)
            marks = _marks(rule, presence, routing)
            if episode is None:
                episode = episodes[agent_id] = _Episode(
                    _start(rule, presence, routing), round_, marks
                )
            else:
                episode.round = round_
                episode.false_since = None
                if not episode.fired and _reentered(episode.marks, marks):
                    # Timed from the new stretch. A firing in progress goes on as the same
                    # firing (hysteresis): no re-fire, and it keeps its start.
                    episode.start = _start(rule, presence, routing)
                episode.marks = marks
            if not episode.fired and now_ms - episode.start >= c.threshold_ms:
                episode.fired = True
                c.firing.add(agent_id)
                events.append(RuleEvent("fire", rule.name, agent_id, episode.start, now_ms))
        # Every episode not continued above is false now, or its agent has gone. Only these
        # few are visited, not every (agent, rule) pair whose condition is false.
        ended = [(a, e) for a, e in episodes.items() if e.round != round_]
        for count, (agent_id, episode) in enumerate(ended, 1):
            if count % STEP_AGENTS == 0:
                yield events
                events = []
            if episodes.get(agent_id) is not episode:
                continue  # forgotten (forget()) between two steps
            if not episode.fired:
                del episodes[agent_id]
                continue
            if agent_id in present:
                if episode.false_since is None:
                    episode.false_since = now_ms
                if now_ms - episode.false_since < c.clear_ms:
                    continue
            del episodes[agent_id]
            c.firing.discard(agent_id)
            events.append(RuleEvent("clear", rule.name, agent_id, episode.start, now_ms))
        yield events

    def firing(self) -> dict[str, set[str]]:
        """Rule name -> the agents it is firing for now (every rule, empty sets included)."""
        return {c.rule.name: set(c.firing) for c in self._compiled}

    def counts(self) -> dict[str, int]:
        """Rule name -> how many agents it is firing for now."""
        return {c.rule.name: len(c.firing) for c in self._compiled}

    def firing_for(self, agent_id: str) -> list[str]:
        """The rules firing for one agent now, in rule order."""
        return [c.rule.name for c in self._compiled if agent_id in c.firing]

    def forget(self, agent_id: str) -> list[str]:
        """Drop everything known about an agent, without events; the rules that were firing
        for it (so the caller can drop its series)."""
        was_firing = []
        for c in self._compiled:
            c.episodes.pop(agent_id, None)
            if agent_id in c.firing:
                c.firing.discard(agent_id)
                was_firing.append(c.rule.name)
        return was_firing


def describe_rules(rules: Sequence[Rule]) -> list[str]:
    """One line per rule, `name: condition`, e.g. for the start-up log."""
    return [f"{r.name}: {r.describe()}" for r in rules]
