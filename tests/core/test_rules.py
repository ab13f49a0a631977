"""Stuck-agent rules: defaults, config parsing, hours, and the engine's hysteresis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.model import Agent, StatusState
from monitor.core.rules import (
    DEFAULT_RULES,
    STEP_AGENTS,
    Hours,
    Rule,
    RuleEngine,
    RuleError,
    RuleEvent,
    describe_rules,
    load,
)
from monitor.core.selectors import Selector

BERLIN = ZoneInfo("Europe/Berlin")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
MIN = 60_000
ADA = Agent(id="agent-ada", name="Ada", queue_ids=("q-sales",))
BEN = Agent(id="agent-ben", name="Ben", queue_ids=("q-support",))

Row = tuple[Agent, StatusState | None, StatusState | None]


def ms(text: str) -> int:
    """Epoch ms of an ISO timestamp with offset."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def st8(value: str, since_ms: int) -> StatusState:
    """A state that began at `since_ms`."""
    return StatusState(value, None, since_ms, since_ms)


def row(agent: Agent, presence: str | None, p_since: int, routing: str | None, r_since: int) -> Row:
    """One agent's row as the daemon passes it to evaluate()."""
    return (
        agent,
        None if presence is None else st8(presence, p_since),
        None if routing is None else st8(routing, r_since),
    )


def rule(name: str = "r", **changes: Any) -> Rule:
    """A Break rule (30 min, clear after 1 min) with some fields changed."""
    base = Rule(name, frozenset({"BREAK"}), None, 1800)
    return replace(base, **changes)


def default(name: str) -> Rule:
    """The default rule of that name."""
    return next(r for r in DEFAULT_RULES if r.name == name)


def kinds(events: Sequence[RuleEvent]) -> list[tuple[str, str, str]]:
    """Events as (kind, rule, agent) for compact assertions."""
    return [(e.kind, e.rule, e.agent_id) for e in events]


# --- defaults ------------------------------------------------------------------------------------


def test_default_rules_are_the_six_documented_ones() -> None:
    """The defaults have the documented names, states and thresholds, and no actions."""
    table = {r.name: (r.presences, r.routing, r.threshold_s) for r in DEFAULT_RULES}
    assert table == {
        "not_responding": (None, {"NOT_RESPONDING"}, 120),
        "ghost_interaction": (None, {"INTERACTING"}, 7200),
        "off_queue_working": ({"AVAILABLE", "BUSY"}, {"OFF_QUEUE"}, 900),
        "long_break": ({"BREAK"}, None, 1800),
        "long_meal": ({"MEAL"}, None, 3600),
        "on_queue_off_queue": ({"ON_QUEUE"}, {"OFF_QUEUE"}, 60),
    }
    assert all(r.clear_after_s == 60 and r.action is None and r.enabled for r in DEFAULT_RULES)


# (rule, presence, routing) that is stuck for it
STUCK = [
    ("not_responding", "ON_QUEUE", "NOT_RESPONDING"),
    ("ghost_interaction", "ON_QUEUE", "INTERACTING"),
    ("off_queue_working", "BUSY", "OFF_QUEUE"),
    ("long_break", "BREAK", "OFF_QUEUE"),
    ("long_meal", "MEAL", "OFF_QUEUE"),
    ("on_queue_off_queue", "ON_QUEUE", "OFF_QUEUE"),
]


@pytest.mark.parametrize(("name", "presence", "routing"), STUCK)
def test_each_default_fires_exactly_at_its_threshold(
    name: str, presence: str, routing: str
) -> None:
    """A default rule fires once its state has lasted its threshold, not a millisecond before."""
    engine = RuleEngine(DEFAULT_RULES)
    threshold = round(default(name).threshold_s * 1000)
    rows = [row(ADA, presence, T0, routing, T0)]
    assert engine.evaluate(T0 + threshold - 1, rows, {}) == []
    assert engine.evaluate(T0 + threshold, rows, {}) == [
        RuleEvent("fire", name, ADA.id, T0, T0 + threshold)
    ]
    assert engine.evaluate(T0 + threshold + 10 * MIN, rows, {}) == []
    assert engine.firing_for(ADA.id) == [name]


def test_an_ordinary_on_queue_agent_fires_nothing() -> None:
    """On Queue and IDLE for a whole day is what an agent should be: no rule fires."""
    engine = RuleEngine(DEFAULT_RULES)
    assert engine.evaluate(T0 + 24 * 60 * MIN, [row(ADA, "ON_QUEUE", T0, "IDLE", T0)], {}) == []
    assert engine.counts() == dict.fromkeys((r.name for r in DEFAULT_RULES), 0)


def test_an_agent_seen_stuck_late_fires_at_once_with_the_true_start() -> None:
    """An agent already on Break for an hour when first seen fires at the first evaluation, and
    the event says when the break began."""
    engine = RuleEngine(DEFAULT_RULES)
    events = engine.evaluate(T0 + 60 * MIN, [row(ADA, "BREAK", T0, "OFF_QUEUE", T0 - MIN)], {})
    assert events == [RuleEvent("fire", "long_break", ADA.id, T0, T0 + 60 * MIN)]


def test_two_state_conditions_begin_at_the_later_state() -> None:
    """On Queue with OFF_QUEUE began when the later of the two began."""
    engine = RuleEngine([default("on_queue_off_queue")])
    rows = [row(ADA, "ON_QUEUE", T0 - 60 * MIN, "OFF_QUEUE", T0)]
    assert engine.evaluate(T0 + MIN - 1, rows, {}) == []
    assert kinds(engine.evaluate(T0 + MIN, rows, {})) == [("fire", "on_queue_off_queue", ADA.id)]


def test_a_change_within_the_allowed_states_keeps_the_start() -> None:
    """Available -> Busy while off queue is still the same condition: its start is kept."""
    engine = RuleEngine([default("off_queue_working")])
    assert engine.evaluate(T0, [row(ADA, "AVAILABLE", T0, "OFF_QUEUE", T0)], {}) == []
    busy = [row(ADA, "BUSY", T0 + 10 * MIN, "OFF_QUEUE", T0)]
    assert engine.evaluate(T0 + 10 * MIN, busy, {}) == []
    assert engine.evaluate(T0 + 15 * MIN, busy, {}) == [
        RuleEvent("fire", "off_queue_working", ADA.id, T0, T0 + 15 * MIN)
    ]


def test_an_agent_finishing_an_interaction_after_going_available_is_not_off_queue() -> None:
    """Available while still INTERACTING (wrap-up) is not "off queue in a working presence"."""
    engine = RuleEngine([default("off_queue_working")])
    assert engine.evaluate(T0 + 60 * MIN, [row(ADA, "AVAILABLE", T0, "INTERACTING", T0)], {}) == []


def test_unknown_states_never_match() -> None:
    """An agent whose constrained state is unknown matches no rule that needs it."""
    engine = RuleEngine(DEFAULT_RULES)
    assert engine.evaluate(T0 + 600 * MIN, [row(ADA, None, 0, None, 0)], {}) == []
    assert engine.evaluate(T0 + 600 * MIN, [row(ADA, "BREAK", T0, None, 0)], {}) == [
        RuleEvent("fire", "long_break", ADA.id, T0, T0 + 600 * MIN)
    ]


# --- hysteresis ----------------------------------------------------------------------------------


def test_fires_once_and_clears_after_staying_false() -> None:
    """A firing rule clears once the condition has been false for clear_after, at that moment."""
    engine = RuleEngine([rule(threshold_s=60, clear_after_s=60)])
    on_break = [row(ADA, "BREAK", T0, "OFF_QUEUE", T0)]
    back = [row(ADA, "ON_QUEUE", T0 + 2 * MIN, "IDLE", T0 + 2 * MIN)]
    assert kinds(engine.evaluate(T0 + MIN, on_break, {})) == [("fire", "r", ADA.id)]
    assert engine.evaluate(T0 + 2 * MIN, back, {}) == []
    assert engine.firing() == {"r": {ADA.id}}
    assert engine.evaluate(T0 + 3 * MIN - 1, back, {}) == []
    assert engine.evaluate(T0 + 3 * MIN, back, {}) == [
        RuleEvent("clear", "r", ADA.id, T0, T0 + 3 * MIN)
    ]
    assert engine.firing() == {"r": set()}
    assert engine.firing_for(ADA.id) == []


def test_flapping_within_clear_after_is_one_firing() -> None:
    """Back in the state before clear_after has passed is the same firing: no new fire event,
    and the episode keeps its start."""
    engine = RuleEngine([rule(threshold_s=60, clear_after_s=120)])
    assert kinds(engine.evaluate(T0 + MIN, [row(ADA, "BREAK", T0, None, 0)], {})) == [
        ("fire", "r", ADA.id)
    ]
    events = []
    for n in range(2, 20, 2):
        events += engine.evaluate(T0 + n * MIN, [row(ADA, "ON_QUEUE", T0 + n * MIN, None, 0)], {})
        later = T0 + (n + 1) * MIN
        events += engine.evaluate(later, [row(ADA, "BREAK", later, None, 0)], {})
    assert events == []
    assert engine.firing_for(ADA.id) == ["r"]
    back = T0 + 30 * MIN
    engine.evaluate(back, [row(ADA, "ON_QUEUE", back, None, 0)], {})
    assert engine.evaluate(back + 2 * MIN, [row(ADA, "ON_QUEUE", back, None, 0)], {}) == [
        RuleEvent("clear", "r", ADA.id, T0, back + 2 * MIN)
    ]


def test_a_condition_that_ends_before_firing_starts_afresh() -> None:
    """A condition false before its threshold is forgotten: the next one counts from its own
    start, so short breaks never add up to a long one."""
    engine = RuleEngine([rule(threshold_s=600)])
    assert engine.evaluate(T0 + 9 * MIN, [row(ADA, "BREAK", T0, None, 0)], {}) == []
    assert engine.evaluate(T0 + 10 * MIN, [row(ADA, "ON_QUEUE", T0 + 10 * MIN, None, 0)], {}) == []
    again = [row(ADA, "BREAK", T0 + 11 * MIN, None, 0)]
    assert engine.evaluate(T0 + 20 * MIN, again, {}) == []
    assert engine.evaluate(T0 + 21 * MIN, again, {}) == [
        RuleEvent("fire", "r", ADA.id, T0 + 11 * MIN, T0 + 21 * MIN)
    ]


def test_a_status_begun_again_between_evaluations_is_timed_afresh() -> None:
    """INTERACTING, then IDLE, then INTERACTING again between two looks is a new interaction:
    the ghost-interaction timer restarts instead of adding the two up."""
    ghost = Rule("ghost", None, frozenset({"INTERACTING"}), 7200)
    engine = RuleEngine([ghost])
    assert engine.evaluate(T0 + 100 * MIN, [row(ADA, None, 0, "INTERACTING", T0)], {}) == []
    again = T0 + 110 * MIN
    assert engine.evaluate(T0 + 125 * MIN, [row(ADA, None, 0, "INTERACTING", again)], {}) == []
    assert engine.evaluate(again + 120 * MIN, [row(ADA, None, 0, "INTERACTING", again)], {}) == [
        RuleEvent("fire", "ghost", ADA.id, again, again + 120 * MIN)
    ]


def test_agents_no_longer_passed_are_cleared_and_forgotten() -> None:
    """An agent that left the roster is cleared at once (firing) or silently dropped (pending)."""
    engine = RuleEngine([rule(threshold_s=60)])
    both = [row(ADA, "BREAK", T0, None, 0), row(BEN, "BREAK", T0 + MIN, None, 0)]
    assert kinds(engine.evaluate(T0 + MIN, both, {})) == [("fire", "r", ADA.id)]
    assert engine.evaluate(T0 + MIN + 1, [], {}) == [
        RuleEvent("clear", "r", ADA.id, T0, T0 + MIN + 1)
    ]
    # Ben was pending: back later, his condition counts from his own start again, once seen.
    assert kinds(engine.evaluate(T0 + 2 * MIN, both[1:], {})) == [("fire", "r", BEN.id)]


def test_forget_drops_an_agent_without_events() -> None:
    """forget() drops an agent's episodes and says which rules were firing for it."""
    engine = RuleEngine([rule("a", threshold_s=0), rule("b", threshold_s=3600)])
    engine.evaluate(T0, [row(ADA, "BREAK", T0, None, 0)], {})
    assert engine.forget(ADA.id) == ["a"]
    assert engine.firing() == {"a": set(), "b": set()}
    assert engine.evaluate(T0 + 1, [], {}) == []


def test_firing_views() -> None:
    """firing(), counts() and firing_for() agree on who is firing what."""
    engine = RuleEngine(DEFAULT_RULES)
    engine.evaluate(
        T0 + 60 * MIN,
        [row(ADA, "BREAK", T0, "NOT_RESPONDING", T0), row(BEN, "MEAL", T0 + 1, "OFF_QUEUE", T0)],
        {},
    )
    assert engine.firing_for(ADA.id) == ["not_responding", "long_break"]
    assert engine.firing()["long_break"] == {ADA.id}
    assert engine.counts() == {
        "not_responding": 1,
        "ghost_interaction": 0,
        "off_queue_working": 0,
        "long_break": 1,
        "long_meal": 0,
        "on_queue_off_queue": 0,
    }


# --- selectors and hours -------------------------------------------------------------------------


def test_a_rule_selector_limits_the_agents() -> None:
    """A rule with a selector only fires for the agents it selects; queue names resolve through
    the engine's name tables."""
    engine = RuleEngine([rule(threshold_s=0, selector=Selector(queues=frozenset({"Sales"})))])
    rows = [row(ADA, "BREAK", T0, None, 0), row(BEN, "BREAK", T0, None, 0)]
    assert engine.evaluate(T0, rows, {}) == []
    engine.resolve_names({"Sales": "q-sales", "Support": "q-support"}, {})
    assert kinds(engine.evaluate(T0 + 1, rows, {})) == [("fire", "r", ADA.id)]


def test_a_selector_time_in_status_adds_to_the_rule() -> None:
    """A selector's own time-in-status constraint is ANDed with the rule's condition."""
    selector = Selector(in_status_for_s=7200, routing_statuses=frozenset({"OFF_QUEUE"}))
    engine = RuleEngine([rule(threshold_s=60, selector=selector)])
    assert engine.evaluate(T0 + 60 * MIN, [row(ADA, "BREAK", T0, "OFF_QUEUE", T0)], {}) == []
    assert kinds(engine.evaluate(T0 + 120 * MIN, [row(ADA, "BREAK", T0, "OFF_QUEUE", T0)], {})) == [
        ("fire", "r", ADA.id)
    ]


def test_hours_window_within_a_day() -> None:
    """08:00-20:00 Berlin time contains 08:00 but not 20:00 nor 07:59, summer and winter."""
    hours = Hours("08:00", "20:00", "Europe/Berlin")
    assert hours.contains(ms("2026-07-01T08:00:00+02:00"), BERLIN)
    assert hours.contains(ms("2026-01-15T19:59:59+01:00"), BERLIN)
    assert not hours.contains(ms("2026-01-15T20:00:00+01:00"), BERLIN)
    assert not hours.contains(ms("2026-07-01T07:59:00+02:00"), BERLIN)


def test_hours_window_across_midnight() -> None:
    """22:00-06:00 contains late evening and early morning, not the day."""
    hours = Hours("22:00", "06:00", "UTC")
    assert hours.contains(ms("2026-03-01T23:30:00+00:00"), UTC)
    assert hours.contains(ms("2026-03-02T05:59:00+00:00"), UTC)
    assert not hours.contains(ms("2026-03-02T06:00:00+00:00"), UTC)
    assert not hours.contains(ms("2026-03-02T12:00:00+00:00"), UTC)


def test_hours_until_midnight() -> None:
    """ "24:00" ends a window at midnight; "00:00"-"24:00" is the whole day."""
    assert Hours("20:00", "24:00").contains(ms("2026-03-01T23:59:00+00:00"), UTC)
    assert not Hours("20:00", "24:00").contains(ms("2026-03-01T00:00:00+00:00"), UTC)
    assert Hours("00:00", "24:00").contains(ms("2026-03-01T00:00:00+00:00"), UTC)


def test_outside_its_hours_a_rule_is_false() -> None:
    """Outside its hours a rule neither fires nor keeps firing; inside, it counts from the
    state's own start."""
    hours = Hours("08:00", "20:00", "Europe/Berlin")
    engine = RuleEngine([rule(threshold_s=1800, hours=hours, clear_after_s=0)])
    began = ms("2026-07-01T07:00:00+02:00")
    rows = [row(ADA, "BREAK", began, None, 0)]
    zones = {"Europe/Berlin": BERLIN}
    assert engine.evaluate(ms("2026-07-01T07:59:00+02:00"), rows, zones) == []
    assert kinds(engine.evaluate(ms("2026-07-01T08:00:00+02:00"), rows, zones)) == [
        ("fire", "r", ADA.id)
    ]
    assert kinds(engine.evaluate(ms("2026-07-01T20:00:00+02:00"), rows, zones)) == [
        ("clear", "r", ADA.id)
    ]


def test_a_missing_zone_is_an_error_before_anything_changes() -> None:
    """evaluate() refuses to run without a zone the rules need, and keeps its state."""
    engine = RuleEngine(
        [rule(threshold_s=0), rule("night", hours=Hours("22:00", "06:00", "Asia/Tokyo"))]
    )
    assert engine.zone_names() == {"Asia/Tokyo"}
    with pytest.raises(ValueError, match="Asia/Tokyo"):
        engine.evaluate(T0, [row(ADA, "BREAK", T0, None, 0)], {})
    assert engine.firing() == {"r": set(), "night": set()}


# --- construction and config ---------------------------------------------------------------------


def test_engine_refuses_duplicate_names_and_skips_disabled_rules() -> None:
    """Rule names are unique in an engine; disabled rules are not evaluated."""
    with pytest.raises(RuleError, match="more than once"):
        RuleEngine([rule("x"), rule("x")])
    engine = RuleEngine([rule("x"), rule("y", enabled=False)])
    assert [r.name for r in engine.rules] == ["x"]


def test_from_mapping_reads_every_key() -> None:
    """A full [[rules]] table becomes a rule with every field set."""
    parsed = Rule.from_mapping(
        {
            "name": "stuck_idle",
            "presence": ["On Queue"],
            "routing_status": ["idle"],
            "threshold": "2h",
            "select": {"queues": ["Sales"]},
            "hours": {"from": "08:00", "to": "20:00", "timezone": "Europe/Berlin"},
            "clear_after": "5m",
            "action": "Offline",
            "enabled": True,
        }
    )
    assert parsed == Rule(
        "stuck_idle",
        frozenset({"ON_QUEUE"}),
        frozenset({"IDLE"}),
        7200,
        Selector(queues=frozenset({"Sales"})),
        Hours("08:00", "20:00", "Europe/Berlin"),
        300,
        "Offline",
    )
    assert parsed.describe() == (
        "presence=ON_QUEUE routing=IDLE for 2h [queues=Sales] during 08:00-20:00 Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"name": "x", "presence": ["Break"], "threshold": "1m", "treshold": 1}, "treshold"),
        ({"name": "bad name!", "presence": ["Break"], "threshold": "1m"}, "name"),
        ({"presence": ["Break"], "threshold": "1m"}, "name"),
        ({"name": "x", "threshold": "1m"}, "presence"),
        ({"name": "x", "presence": ["Brake"], "threshold": "1m"}, "presence"),
        ({"name": "x", "presence": [], "threshold": "1m"}, "presence"),
        ({"name": "x", "routing_status": ["AWAY"], "threshold": "1m"}, "routing_status"),
        ({"name": "x", "presence": ["Break"]}, "threshold"),
        ({"name": "x", "presence": ["Break"], "threshold": "soon"}, "threshold"),
        ({"name": "x", "presence": ["Break"], "threshold": 1, "clear_after": -1}, "clear_after"),
        (
            {"name": "x", "presence": ["Break"], "threshold": 1, "select": {"team": []}},
            "select.team",
        ),
        ({"name": "x", "presence": ["Break"], "threshold": 1, "hours": "9-5"}, "hours"),
        (
            {"name": "x", "presence": ["Break"], "threshold": 1, "hours": {"to": "17:00"}},
            "hours.from",
        ),
        (
            {
                "name": "x",
                "presence": ["Break"],
                "threshold": 1,
                "hours": {"from": "9am", "to": "17:00"},
            },
            "hours.from",
        ),
        (
            {
                "name": "x",
                "presence": ["Break"],
                "threshold": 1,
                "hours": {"from": "09:00", "to": "24:30"},
            },
            "hours.to",
        ),
        (
            {
                "name": "x",
                "presence": ["Break"],
                "threshold": 1,
                "hours": {"from": "09:00", "to": "09:00"},
            },
            "hours.to",
        ),
        (
            {
                "name": "x",
                "presence": ["Break"],
                "threshold": 1,
                "hours": {"from": "09:00", "to": "17:00", "tz": "UTC"},
            },
            "hours.tz",
        ),
        ({"name": "x", "presence": ["Break"], "threshold": 1, "action": ""}, "action"),
        ({"name": "x", "presence": ["Break"], "threshold": 1, "enabled": "yes"}, "enabled"),
    ],
)
def test_bad_rules_name_the_key(table: dict[str, Any], key: str) -> None:
    """Every bad [[rules]] table is a RuleError (a ValueError) whose message starts with its key."""
    with pytest.raises(RuleError) as caught:
        Rule.from_mapping(table)
    assert str(caught.value).startswith(f"{key}: ")


def test_load_starts_from_the_defaults() -> None:
    """No tables: the six defaults; defaults=False: none."""
    assert load([]) == DEFAULT_RULES
    assert load([], defaults=False) == ()


def test_a_table_named_like_a_default_overrides_it_key_by_key() -> None:
    """Overriding a default changes only the keys given; enabled=false turns it off; other
    names add rules."""
    rules = load(
        [
            {"name": "long_break", "threshold": "45m", "action": "On Queue"},
            {"name": "ghost_interaction", "enabled": False},
            {"name": "long_training", "presence": ["Training"], "threshold": "4h"},
        ]
    )
    by_name = {r.name: r for r in rules}
    assert "ghost_interaction" not in by_name
    assert by_name["long_break"] == replace(
        default("long_break"), threshold_s=2700, action="On Queue"
    )
    assert by_name["long_training"].presences == frozenset({"TRAINING"})
    assert len(rules) == 6


def test_load_errors_say_which_table() -> None:
    """An error in the n-th table is prefixed with rules[n]; a name given twice is refused."""
    with pytest.raises(RuleError, match=r"^rules\[1\]\.threshold: "):
        load([{"name": "long_meal", "threshold": "1h"}, {"name": "x", "presence": "Meal"}])
    with pytest.raises(RuleError, match=r"^rules\[1\]\.name: 'x' is configured twice"):
        load([{"name": "x", "presence": "Meal", "threshold": 1}] * 2)
    with pytest.raises(RuleError, match=r"^rules\[0\]\.name: expected a table"):
        load(["not a table"])  # type: ignore[list-item]


def test_load_checks_zone_names_when_told_which_exist() -> None:
    """With the known zone names, a rule's unknown time zone is a config error."""
    table = {
        "name": "x",
        "presence": "Meal",
        "threshold": 1,
        "hours": {"from": "08:00", "to": "18:00", "timezone": "Mars/Olympus"},
    }
    assert load([table], known_zones=None)[-1].hours == Hours("08:00", "18:00", "Mars/Olympus")
    with pytest.raises(RuleError, match=r"^rules\[0\]\.hours\.timezone: unknown time zone"):
        load([table], known_zones={"UTC", "Europe/Berlin"})


def test_describe_rules_lists_one_line_per_rule() -> None:
    """describe_rules gives `name: condition` lines for the start-up log."""
    assert describe_rules(DEFAULT_RULES)[2] == (
        "off_queue_working: presence=AVAILABLE,BUSY routing=OFF_QUEUE for 15m"
    )


# --- properties ----------------------------------------------------------------------------------

PRESENCES = ("ON_QUEUE", "AVAILABLE", "BUSY", "BREAK")
ROUTINGS = ("IDLE", "OFF_QUEUE", "NOT_RESPONDING")
AGENTS = (ADA, BEN)
PROPERTY_RULES = (
    Rule("brk", frozenset({"BREAK"}), None, 120, clear_after_s=60),
    Rule("nr", None, frozenset({"NOT_RESPONDING"}), 30, clear_after_s=0),
    Rule("work", frozenset({"AVAILABLE", "BUSY"}), frozenset({"OFF_QUEUE"}), 90, clear_after_s=120),
    Rule(
        "oq",
        frozenset({"ON_QUEUE"}),
        frozenset({"OFF_QUEUE", "NOT_RESPONDING"}),
        0,
        clear_after_s=30,
    ),
)

# One agent at one evaluation: absent (None), or presence, routing, and whether each was left
# and re-entered since the last evaluation (a since that moves without a value change).
agent_step = st.none() | st.tuples(
    st.sampled_from(PRESENCES), st.sampled_from(ROUTINGS), st.booleans(), st.booleans()
)
steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=90_000), agent_step, agent_step),
    min_size=1,
    max_size=40,
)


def run(script: list[Any]) -> tuple[list[tuple[int, list[Row]]], list[list[RuleEvent]]]:
    """Drive an engine with the property rules through a generated script; the rows given at
    each time, and the events of each evaluation."""
    engine = RuleEngine(PROPERTY_RULES)
    now = T0
    known: dict[str, tuple[StatusState, StatusState]] = {}
    timeline, events = [], []
    for dt, *per_agent in script:
        now += dt
        rows: list[Row] = []
        for agent, step in zip(AGENTS, per_agent, strict=True):
            if step is None:
                known.pop(agent.id, None)
                continue
            presence, routing, p_again, r_again = step
            old = known.get(agent.id)
            # A new or re-entered state began sometime since the last evaluation.
            began = now - dt // 2
            p = old[0] if old and old[0].value == presence and not p_again else st8(presence, began)
            r = old[1] if old and old[1].value == routing and not r_again else st8(routing, began)
            known[agent.id] = (p, r)
            rows.append((agent, p, r))
        timeline.append((now, rows))
        events.append(engine.evaluate(now, rows, {}))
    return timeline, events


def holds(r: Rule, presence: StatusState | None, routing: StatusState | None) -> bool:
    """The rule's condition, written plainly."""
    return (r.presences is None or (presence is not None and presence.value in r.presences)) and (
        r.routing is None or (routing is not None and routing.value in r.routing)
    )


def reference(timeline: list[tuple[int, list[Row]]]) -> list[list[RuleEvent]]:
    """The events the module docstring describes, computed the slow, obvious way."""
    start: dict[tuple[str, str], int] = {}
    fired: set[tuple[str, str]] = set()
    false_since: dict[tuple[str, str], int] = {}
    seen: dict[tuple[str, str], list[tuple[str, int] | None]] = {}
    out = []
    for now, rows in timeline:
        events = []
        present = {a.id: (p, r) for a, p, r in rows}
        for r in PROPERTY_RULES:
            for agent in AGENTS:
                key = (r.name, agent.id)
                if agent.id not in present:
                    if key in fired:
                        events.append(RuleEvent("clear", r.name, agent.id, start[key], now))
                    fired.discard(key)
                    start.pop(key, None)
                    false_since.pop(key, None)
                    continue
                p, rt = present[agent.id]
                if holds(r, p, rt):
                    false_since.pop(key, None)
                    marks = [
                        None if c is None or st is None else (st.value, st.since_ms)
                        for st, c in ((p, r.presences), (rt, r.routing))
                    ]
                    # The same value begun again since the last look: a new stretch (unless
                    # already firing, which goes on as the same firing).
                    reentered = (
                        key in start
                        and key not in fired
                        and any(
                            b is not None and m is not None and b[0] == m[0] and m[1] > b[1]
                            for b, m in zip(seen.get(key, marks), marks, strict=True)
                        )
                    )
                    seen[key] = marks
                    if key not in start or reentered:
                        constrained = [
                            s.since_ms
                            for s, c in ((p, r.presences), (rt, r.routing))
                            if c is not None and s is not None
                        ]
                        start[key] = max(constrained)
                    if key not in fired and now - start[key] >= r.threshold_s * 1000:
                        fired.add(key)
                        events.append(RuleEvent("fire", r.name, agent.id, start[key], now))
                elif key in fired:
                    since = false_since.setdefault(key, now)
                    if now - since >= r.clear_after_s * 1000:
                        events.append(RuleEvent("clear", r.name, agent.id, start[key], now))
                        fired.discard(key)
                        start.pop(key)
                        false_since.pop(key)
                else:
                    start.pop(key, None)
        out.append(events)
    return out


def ordered(events: list[RuleEvent]) -> list[RuleEvent]:
    return sorted(events, key=lambda e: (e.rule, e.agent_id, e.kind))


@given(steps)
def test_engine_agrees_with_the_plain_description(script: list[Any]) -> None:
    """For any sequence of states over time, the engine makes exactly the events a plain
    implementation of the documented hysteresis makes."""
    timeline, events = run(script)
    assert [ordered(e) for e in events] == [ordered(e) for e in reference(timeline)]


@given(steps)
def test_fire_and_clear_alternate_starting_with_fire(script: list[Any]) -> None:
    """Per (rule, agent), events alternate fire, clear, fire, ... starting with fire."""
    _, events = run(script)
    last: dict[tuple[str, str], str] = {}
    for event in (e for batch in events for e in batch):
        key = (event.rule, event.agent_id)
        assert event.kind == ("clear" if last.get(key) == "fire" else "fire")
        last[key] = event.kind


@given(steps)
def test_no_fire_before_the_threshold(script: list[Any]) -> None:
    """No rule fires before its threshold has elapsed since its condition began, and that start
    is never later than the state the rule saw at that moment."""
    timeline, events = run(script)
    thresholds = {r.name: r.threshold_s * 1000 for r in PROPERTY_RULES}
    for (now, rows), batch in zip(timeline, events, strict=True):
        states = {a.id: (p, r) for a, p, r in rows}
        for event in batch:
            if event.kind == "fire":
                assert event.at_ms == now
                assert now - event.since_ms >= thresholds[event.rule]
                p, r = states[event.agent_id]
                assert event.since_ms <= max(s.since_ms for s in (p, r) if s is not None)


@st.composite
def flapping(draw: st.DrawFn) -> list[tuple[int, bool]]:
    """Evaluation times and whether the condition holds, where every false stretch (first false
    evaluation to the next true one) is shorter than the 60 s clear_after of `brk`."""
    script = [(0, True)]
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            script.append((draw(st.integers(min_value=1, max_value=100_000)), True))
        falses = draw(st.integers(min_value=1, max_value=3))
        gap = draw(st.integers(min_value=1, max_value=59_999 // (falses + 1)))
        first = draw(st.integers(min_value=1, max_value=100_000))
        script.append((first, False))
        script += [(gap, False)] * (falses - 1)
        script.append((gap, True))
    return script


@given(flapping())
def test_flapping_faster_than_clear_after_fires_at_most_once(
    script: list[tuple[int, bool]],
) -> None:
    """However long an agent flaps in and out of Break, if it never stays out for clear_after,
    the rule fires at most once and never clears."""
    engine = RuleEngine([PROPERTY_RULES[0]])
    now = T0
    events = []
    for dt, on_break in script:
        now += dt
        events += engine.evaluate(
            now, [row(ADA, "BREAK" if on_break else "ON_QUEUE", now, None, 0)], {}
        )
    assert [e.kind for e in events] in ([], ["fire"])


def test_stepping_the_rules_one_at_a_time_gives_the_events_of_evaluate() -> None:
    """steps() yields one rule's events at a time, in rule order, the same events evaluate()
    makes; until a rule's step has run, that rule still shows the previous outcome."""
    stepped, whole = RuleEngine(DEFAULT_RULES), RuleEngine(DEFAULT_RULES)
    rows = [row(ADA, "BREAK", T0, "OFF_QUEUE", T0), row(BEN, "ON_QUEUE", T0, "OFF_QUEUE", T0)]
    now = T0 + 60 * MIN
    steps = stepped.steps(now, rows, {})
    seen: list[RuleEvent] = []
    for rule_ in DEFAULT_RULES:
        fired_before = rule_.name in stepped.firing_for(ADA.id)
        events = next(steps)
        assert all(event.rule == rule_.name for event in events)
        if rule_.name == "long_break":
            assert (fired_before, rule_.name in stepped.firing_for(ADA.id)) == (False, True)
        seen += events
    assert next(steps, None) is None
    assert seen == whole.evaluate(now, rows, {})
    assert kinds(seen) == [
        ("fire", "long_break", ADA.id),
        ("fire", "on_queue_off_queue", BEN.id),
    ]


def test_a_rule_over_many_agents_is_stepped_a_few_hundred_agents_at_a_time() -> None:
    """A rule whose condition holds for more agents than STEP_AGENTS takes several steps, and
    an agent forgotten between two of them is skipped, not failed on: the events are those of
    evaluate() less the forgotten agent's."""
    crowd = [
        Agent(id=f"agent-{i:05d}", name=f"A{i}") for i in range(2 * STEP_AGENTS + STEP_AGENTS // 2)
    ]
    on_break = [row(agent, "BREAK", T0, None, 0) for agent in crowd]
    stepped, whole = RuleEngine([rule()]), RuleEngine([rule()])
    assert len(list(stepped.steps(T0 + 40 * MIN, on_break, {}))) == 3
    whole.evaluate(T0 + 40 * MIN, on_break, {})
    # Every agent gone: the next round clears them all, in steps again.
    back: list[Row] = []
    steps = stepped.steps(T0 + 50 * MIN, back, {})
    first = next(steps)
    stepped.forget(crowd[-1].id)
    rest = [event for step in steps for event in step]
    expected = whole.evaluate(T0 + 50 * MIN, back, {})
    assert first + rest == [event for event in expected if event.agent_id != crowd[-1].id]
    assert len(expected) == len(crowd)
    assert stepped.counts() == {"r": 0}


SEEN_PRESENCES: list[str | None] = [
    None,
    "ON_QUEUE",
    "AVAILABLE",
    "BREAK",
    "MEAL",
    "BUSY",
    "OFFLINE",
]
SEEN_ROUTING: list[str | None] = [None, "IDLE", "INTERACTING", "OFF_QUEUE", "NOT_RESPONDING"]


@given(
    rounds=st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 5),  # agent
                st.sampled_from(SEEN_PRESENCES),
                st.sampled_from(SEEN_ROUTING),
                st.integers(0, 40),  # minutes before the round that the states began
            ),
            max_size=12,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_passing_only_the_agents_a_rule_could_match_changes_no_event(
    rounds: list[list[tuple[int, str | None, str | None, int]]],
) -> None:
    """Rows limited to the agents could_match() picks, with every watched agent in `present`,
    make the same events round after round as rows for every agent."""
    agents = [Agent(id=f"agent-{n}", name=f"Agent {n}") for n in range(6)]
    full, filtered = RuleEngine(DEFAULT_RULES), RuleEngine(DEFAULT_RULES)
    states: dict[int, Row] = {}
    for number, changes in enumerate(rounds):
        now = T0 + number * 7 * MIN
        for agent, presence, routing, minutes in changes:
            since = now - minutes * MIN
            states[agent] = row(agents[agent], presence, since, routing, since)
        rows = [states[n] for n in sorted(states)]
        wanted = [
            r
            for r in rows
            if filtered.could_match(*(None if s is None else s.value for s in r[1:]))
        ]
        present = {r[0].id for r in rows}
        expected = full.evaluate(now, rows, {})
        got = [e for step in filtered.steps(now, wanted, {}, present) for e in step]
        assert got == expected
        assert filtered.firing() == full.firing()
