"""Which agents a request, a schedule or a rule is about.

A `Selector` combines fields with AND and the values within one field with OR; a field left empty
does not constrain, so the empty selector selects everyone:

- `agents` (user ids), `emails`: exact, case-insensitive;
- `divisions`: division names or ids; `queues`: queue names or ids (an agent in any of them);
- `presences`, `routing_statuses`: the agent's current system presence or routing status, named
  the way people write them (`On Queue`, `on_queue`, `OnQueue`, `ON_QUEUE` are the same);
- `in_status_for_s` with `in_status_kind`: in its current presence (or routing status) for at
  least that long, e.g. "On Queue for more than 10 hours".

Names and ids: an agent carries its division id and name, but only the ids of its queues. Queue
names (and division names, when the roster did not expand them) are therefore turned into ids in
one `resolve()` step, against the org's name -> id tables, which returns a selector that matches
by id. `matches()` also accepts those tables and resolves on every call; whoever matches many
agents resolves once and calls `matches()` without them.

`parse_duration` also lives here: selectors, rules and schedules share one duration syntax.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from monitor.core.model import Agent, Kind, Presence, RoutingStatus, StatusState

__all__ = [
    "Selector",
    "SelectorError",
    "format_duration",
    "parse_duration",
    "presence_value",
    "routing_value",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NO_NAMES: frozenset[str] = frozenset()


class SelectorError(ValueError):
    """A selector that cannot be understood; the message starts with the offending key."""


# --- durations -----------------------------------------------------------------------------------

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", re.ASCII)
_DURATION_EXAMPLE = "a duration like '90s', '15m', '10h', '1h30m' or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds in a duration: a number of seconds, or text like "90s", "15m", "10h", "1h30m",
    "1.5h", "500ms", "2d" (a bare number in text is seconds too). ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected {_DURATION_EXAMPLE}, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            # Units in any order and repeated ("30m1h") add up; only the whole text must parse.
            position = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != position:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                position = match.end()
            if not text or position != len(text):
                raise ValueError(f"expected {_DURATION_EXAMPLE}, got {value!r}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected {_DURATION_EXAMPLE}, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The short form `parse_duration` reads back: 5400 -> "1h30m", 90 -> "1m30s", 0.5 -> "500ms"."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    rest = seconds - whole
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or rest or not parts:
        parts.append(f"{whole + rest:g}s")
    return "".join(parts)


# --- status names --------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s_\-]+")


def _compact(text: str) -> str:
    """A name with case, spaces, underscores and hyphens ignored: "On Queue" -> "onqueue"."""
    return _SEPARATORS.sub("", text).casefold()


def _spoken(value: str) -> str:
    return value.replace("_", " ").title()


def _lookup(enum: type[StrEnum]) -> dict[str, str]:
    return {_compact(member.value): member.value for member in enum}


_PRESENCES = _lookup(Presence)
_ROUTING = _lookup(RoutingStatus)


def _status(text: Any, table: Mapping[str, str], what: str) -> str:
    value = table.get(_compact(text)) if isinstance(text, str) else None
    if value is None:
        choices = ", ".join(_spoken(v) for v in table.values())
        raise ValueError(f"unknown {what} {text!r}; one of {choices}")
    return value


def presence_value(text: Any) -> str:
    """The system presence a name means ("On Queue" -> "ON_QUEUE"); ValueError listing the
    system presences otherwise."""
    return _status(text, _PRESENCES, "presence")


def routing_value(text: Any) -> str:
    """The routing status a name means ("not responding" -> "NOT_RESPONDING"); ValueError listing
    the routing statuses otherwise."""
    return _status(text, _ROUTING, "routing status")


# --- the selector --------------------------------------------------------------------------------

# from_mapping key -> Selector field, for the lists of names.
_LIST_KEYS = {
    "agents": "agents",
    "emails": "emails",
    "divisions": "divisions",
    "queues": "queues",
    "presence": "presences",
    "routing_status": "routing_statuses",
}
_KEYS = (*_LIST_KEYS, "in_status_for", "in_status_kind")


def _names(values: Iterable[str], key: str) -> frozenset[str]:
    if isinstance(values, str):
        values = (values,)
    result = set()
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise SelectorError(f"{key}: expected non-empty names, got {value!r}")
        result.add(value.strip())
    return frozenset(result)


def _resolve_names(names: frozenset[str], ids_by_name: Mapping[str, str]) -> frozenset[str]:
    if not names or not ids_by_name:
        return _NO_NAMES
    folded = {name.casefold(): ident for name, ident in ids_by_name.items()}
    return frozenset(folded[n.casefold()].casefold() for n in names if n.casefold() in folded)


@dataclass(frozen=True, slots=True)
class Selector:
    """Which agents: AND across fields, OR within one; empty fields do not constrain.

    Names are kept as given (for `describe()` and audit rows); matching ignores case. Presence and
    routing-status names are normalised on construction (ValueError listing the choices). The
    `*_resolved` fields hold the ids that `resolve()` found for queue and division names.
    """

    agents: frozenset[str] = _NO_NAMES
    emails: frozenset[str] = _NO_NAMES
    divisions: frozenset[str] = _NO_NAMES  # names or ids
    queues: frozenset[str] = _NO_NAMES  # names or ids
    presences: frozenset[str] = _NO_NAMES
    routing_statuses: frozenset[str] = _NO_NAMES
    in_status_for_s: float | None = None
    in_status_kind: Kind = Kind.PRESENCE
    queues_resolved: frozenset[str] = _NO_NAMES
    divisions_resolved: frozenset[str] = _NO_NAMES
    # Case-folded keys that matching looks up, derived once here.
    _agent_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _email_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _division_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _queue_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _in_status_ms: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        for key, name in _LIST_KEYS.items():
            put(self, name, _names(getattr(self, name), key))
        try:
            put(self, "presences", frozenset(presence_value(p) for p in self.presences))
        except ValueError as exc:
            raise SelectorError(f"presence: {exc}") from None
        try:
            put(
                self, "routing_statuses", frozenset(routing_value(r) for r in self.routing_statuses)
            )
        except ValueError as exc:
            raise SelectorError(f"routing_status: {exc}") from None
        if self.in_status_for_s is not None:
            seconds = self.in_status_for_s
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise SelectorError(f"in_status_for: expected seconds, got {seconds!r}")
            if not math.isfinite(seconds) or seconds < 0:
                raise SelectorError(f"in_status_for: expected seconds >= 0, got {seconds!r}")
        try:
            put(self, "in_status_kind", Kind(self.in_status_kind))
        except ValueError:
            raise SelectorError(
                f"in_status_kind: 'presence' or 'routing', not {self.in_status_kind!r}"
            ) from None
        put(self, "_agent_keys", frozenset(a.casefold() for a in self.agents))
        put(self, "_email_keys", frozenset(e.casefold() for e in self.emails))
        put(
            self,
            "_division_keys",
            frozenset(d.casefold() for d in self.divisions) | self.divisions_resolved,
        )
        put(
            self, "_queue_keys", frozenset(q.casefold() for q in self.queues) | self.queues_resolved
        )
        put(
            self,
            "_in_status_ms",
            None if self.in_status_for_s is None else round(self.in_status_for_s * 1000),
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Selector:
        """A selector from the shape the HTTP endpoint and config.toml use::

            {"agents": [...], "emails": [...], "divisions": [...], "queues": [...],
             "presence": ["On Queue"], "routing_status": ["IDLE"],
             "in_status_for": "10h" or seconds, "in_status_kind": "presence" | "routing"}

        A single name may stand for a list of one. `in_status_kind` defaults to "routing" when
        only routing statuses are named, else "presence". An empty list is refused: it would
        read as "nobody" but, as an absent key, select everyone. SelectorError names the key.
        """
        if not isinstance(data, Mapping):
            raise SelectorError(
                f'expected an object of selectors such as {{"queues": ["Sales"]}}, '
                f"got {type(data).__name__}"
            )
        unknown = sorted(str(key) for key in data if key not in _KEYS)
        if unknown:
            raise SelectorError(f"{unknown[0]}: unknown selector; known are {', '.join(_KEYS)}")
        lists: dict[str, Any] = {}
        for key, name in _LIST_KEYS.items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple):
                raise SelectorError(f"{key}: expected a list of names, got {value!r}")
            if not value:
                raise SelectorError(f"{key}: an empty list; leave the key out to select everyone")
            lists[name] = _names(value, key)
        seconds = None
        if "in_status_for" in data:
            try:
                seconds = parse_duration(data["in_status_for"])
            except ValueError as exc:
                raise SelectorError(f"in_status_for: {exc}") from None
        if "in_status_kind" in data:
            if "in_status_for" not in data:
                raise SelectorError("in_status_kind: only meaningful with in_status_for")
            kind_text = data["in_status_kind"]
            if kind_text not in ("presence", "routing"):
                raise SelectorError(f"in_status_kind: 'presence' or 'routing', not {kind_text!r}")
            kind = Kind(kind_text)
        elif "routing_status" in data and "presence" not in data:
            kind = Kind.ROUTING
        else:
            kind = Kind.PRESENCE
        return cls(**lists, in_status_for_s=seconds, in_status_kind=kind)

    def to_mapping(self) -> dict[str, Any]:
        """The `from_mapping` shape of this selector (names as given, lists sorted, the duration
        in seconds), which reads back as an equal selector."""
        data: dict[str, Any] = {
            key: sorted(getattr(self, name))
            for key, name in _LIST_KEYS.items()
            if getattr(self, name)
        }
        if self.in_status_for_s is not None:
            data["in_status_for"] = self.in_status_for_s
            data["in_status_kind"] = self.in_status_kind.value
        return data

    @property
    def everyone(self) -> bool:
        """Whether the selector constrains nothing."""
        return not (
            self.agents
            or self.emails
            or self.divisions
            or self.queues
            or self.presences
            or self.routing_statuses
            or self.in_status_for_s is not None
        )

    def resolve(
        self,
        queue_ids_by_name: Mapping[str, str] = _EMPTY,
        division_ids_by_name: Mapping[str, str] = _EMPTY,
    ) -> Selector:
        """This selector with its queue and division names also matched by the ids the tables
        give them (names compared case-insensitively). Names the tables do not know stay as they
        are: they may be ids, or a division name the agents carry themselves. Resolving again
        replaces the earlier resolution, so renamed queues do not linger."""
        queues = _resolve_names(self.queues, queue_ids_by_name)
        divisions = _resolve_names(self.divisions, division_ids_by_name)
        if queues == self.queues_resolved and divisions == self.divisions_resolved:
            return self
        return Selector(
            agents=self.agents,
            emails=self.emails,
            divisions=self.divisions,
            queues=self.queues,
            presences=self.presences,
            routing_statuses=self.routing_statuses,
            in_status_for_s=self.in_status_for_s,
            in_status_kind=self.in_status_kind,
            queues_resolved=queues,
            divisions_resolved=divisions,
        )

    def unknown_names(
        self,
        queue_ids_by_name: Mapping[str, str],
        division_ids_by_name: Mapping[str, str],
    ) -> list[str]:
        """Queue and division entries that are neither a known name nor a known id, e.g. for a
        warning that a configured queue does not exist (any more)."""
        unknown = []
        for what, names, table in (
            ("queue", self.queues, queue_ids_by_name),
            ("division", self.divisions, division_ids_by_name),
        ):
            known = {n.casefold() for n in table} | {i.casefold() for i in table.values()}
            unknown += [f"{what} {n!r}" for n in sorted(names) if n.casefold() not in known]
        return unknown

    def matches(
        self,
        agent: Agent,
        presence: StatusState | None,
        routing: StatusState | None,
        now_ms: int,
        queue_ids_by_name: Mapping[str, str] = _EMPTY,
        division_ids_by_name: Mapping[str, str] = _EMPTY,
    ) -> bool:
        """Whether the agent, in these states at `now_ms`, is selected.

        Given name -> id tables, queue and division names are resolved first, on every call:
        resolve once with `resolve()` to match many agents.
        """
        if queue_ids_by_name or division_ids_by_name:
            return self.resolve(queue_ids_by_name, division_ids_by_name).matches(
                agent, presence, routing, now_ms
            )
        if self._agent_keys and agent.id.casefold() not in self._agent_keys:
            return False
        if self._email_keys and (not agent.email or agent.email.casefold() not in self._email_keys):
            return False
        if self._division_keys and not (
            (agent.division_id and agent.division_id.casefold() in self._division_keys)
            or (agent.division_name and agent.division_name.casefold() in self._division_keys)
        ):
            return False
        if self._queue_keys and not any(q.casefold() in self._queue_keys for q in agent.queue_ids):
            return False
        if self.presences and (presence is None or presence.value not in self.presences):
            return False
        if self.routing_statuses and (
            routing is None or routing.value not in self.routing_statuses
        ):
            return False
        if self._in_status_ms is not None:
            state = presence if self.in_status_kind is Kind.PRESENCE else routing
            if state is None or now_ms - state.since_ms < self._in_status_ms:
                return False
        return True

    def describe(self) -> str:
        """A short, stable text for logs and audit rows, e.g.
        `queues=Sales; presence=ON_QUEUE; in presence for >= 10h`, or `everyone`."""
        parts = [
            f"{key}={','.join(sorted(getattr(self, name)))}"
            for key, name in _LIST_KEYS.items()
            if getattr(self, name)
        ]
        if self.in_status_for_s is not None:
            parts.append(
                f"in {self.in_status_kind.value} for >= {format_duration(self.in_status_for_s)}"
            )
        return "; ".join(parts) or "everyone"
