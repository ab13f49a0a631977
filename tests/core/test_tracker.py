"""The tracker: transitions from updates, whatever their order, repetition or ties."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.core.model import Kind, Source, StatusState, Transition, Update
from monitor.core.tracker import RECENT, Tracker

A = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
B = "e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f"
COFFEE = "11111111-1111-4111-8111-111111111111"
LUNCH = "22222222-2222-4222-8222-222222222222"
T0 = 1_715_677_397_067


def presence(value: str, at: int, definition: str | None = None, agent: str = A) -> Update:
    return Update(agent, Kind.PRESENCE, value, at, definition)


def routing(value: str, at: int, agent: str = A) -> Update:
    return Update(agent, Kind.ROUTING, value, at)


def test_first_update_is_a_transition_from_none() -> None:
    """The first update for an agent and kind becomes the state, as a transition from None."""
    tracker = Tracker()
    result = tracker.apply(routing("IDLE", T0), T0 + 50, Source.LIVE)
    assert result == Transition(A, Kind.ROUTING, None, "IDLE", None, T0, T0 + 50, Source.LIVE)
    assert tracker.state(A, Kind.ROUTING) == StatusState("IDLE", None, T0, T0)
    assert tracker.applied == 1


def test_newer_different_update_is_a_transition() -> None:
    """A newer, different update is a transition from the previous value."""
    tracker = Tracker()
    tracker.apply(routing("IDLE", T0), T0, Source.SNAPSHOT)
    result = tracker.apply(routing("INTERACTING", T0 + 1000), T0 + 1200, Source.LIVE)
    assert result == Transition(
        A, Kind.ROUTING, "IDLE", "INTERACTING", None, T0 + 1000, T0 + 1200, Source.LIVE
    )
    assert tracker.state(A, Kind.ROUTING) == StatusState("INTERACTING", None, T0 + 1000, T0 + 1000)


def test_older_unseen_update_is_a_late_transition() -> None:
    """An older change not seen before is recorded as late, in its place; the state stays."""
    tracker = Tracker()
    tracker.apply(routing("OFF_QUEUE", T0), T0, Source.LIVE)
    tracker.apply(routing("INTERACTING", T0 + 1000), T0 + 1000, Source.LIVE)
    late = tracker.apply(routing("IDLE", T0 + 500), T0 + 1100, Source.LIVE)
    assert late == Transition(
        A, Kind.ROUTING, "OFF_QUEUE", "IDLE", None, T0 + 500, T0 + 1100, Source.LIVE, late=True
    )
    assert tracker.state(A, Kind.ROUTING) == StatusState("INTERACTING", None, T0 + 1000, T0 + 1000)
    assert tracker.late == 1
    # Heard again, it is a duplicate.
    assert tracker.apply(routing("IDLE", T0 + 500), T0 + 1200, Source.SNAPSHOT) is None
    assert tracker.duplicates == 1


def test_late_update_before_anything_known_has_no_from_value() -> None:
    """A late change older than every remembered event has no known predecessor."""
    tracker = Tracker()
    tracker.apply(routing("INTERACTING", T0 + 1000), T0, Source.LIVE)
    late = tracker.apply(routing("IDLE", T0), T0, Source.LIVE)
    assert late is not None
    assert (late.from_value, late.late) == (None, True)


def test_repeated_update_is_a_duplicate() -> None:
    """The same update again (e.g. from an overlapping socket) is counted and dropped."""
    tracker = Tracker()
    tracker.apply(presence("BREAK", T0, COFFEE), T0, Source.LIVE)
    assert tracker.apply(presence("BREAK", T0, COFFEE), T0 + 5, Source.LIVE) is None
    assert tracker.duplicates == 1
    assert tracker.applied == 1


def test_tie_is_settled_by_the_larger_value_in_either_order() -> None:
    """Two different updates with the same time settle on the larger value, whatever the order."""
    first, second = routing("IDLE", T0), routing("INTERACTING", T0)
    forward, backward = Tracker(), Tracker()
    forward.apply(first, T0, Source.LIVE)
    won = forward.apply(second, T0, Source.LIVE)
    backward.apply(second, T0, Source.LIVE)
    lost = backward.apply(first, T0, Source.LIVE)
    assert won == Transition(A, Kind.ROUTING, "IDLE", "INTERACTING", None, T0, T0, Source.LIVE)
    assert lost is None
    assert forward.state(A, Kind.ROUTING) == backward.state(A, Kind.ROUTING)
    assert backward.stale == 1


def test_tie_on_the_same_presence_is_settled_by_definition() -> None:
    """Same time and system presence, different definitions: the larger definition id wins."""
    tracker = Tracker()
    tracker.apply(presence("BREAK", T0, LUNCH), T0, Source.LIVE)
    assert tracker.apply(presence("BREAK", T0, COFFEE), T0, Source.LIVE) is None
    state = tracker.state(A, Kind.PRESENCE)
    assert state is not None
    assert state.definition_id == LUNCH


def test_newer_same_update_marks_a_re_entry() -> None:
    """A newer update with the same value moves `since` and returns a from==to transition."""
    tracker = Tracker()
    tracker.apply(routing("IDLE", T0), T0, Source.LIVE)
    result = tracker.apply(routing("IDLE", T0 + 60_000), T0 + 60_100, Source.SNAPSHOT)
    assert result == Transition(
        A, Kind.ROUTING, "IDLE", "IDLE", None, T0 + 60_000, T0 + 60_100, Source.SNAPSHOT
    )
    assert tracker.state(A, Kind.ROUTING) == StatusState("IDLE", None, T0 + 60_000, T0 + 60_000)


def test_secondary_presence_change_is_a_transition() -> None:
    """Changing the definition (Coffee to Lunch) under one system presence is a transition."""
    tracker = Tracker()
    tracker.apply(presence("BREAK", T0, COFFEE), T0, Source.LIVE)
    result = tracker.apply(presence("BREAK", T0 + 10, LUNCH), T0 + 10, Source.LIVE)
    assert result is not None
    assert (result.from_value, result.to_value, result.definition_id) == ("BREAK", "BREAK", LUNCH)


def test_empty_definition_is_the_same_as_none() -> None:
    """An empty definition id and None compare equal, so neither order makes a transition."""
    tracker = Tracker()
    tracker.apply(presence("AVAILABLE", T0, None), T0, Source.LIVE)
    assert tracker.apply(presence("AVAILABLE", T0, ""), T0, Source.LIVE) is None
    assert tracker.duplicates == 1


def test_kinds_and_agents_are_independent() -> None:
    """Presence and routing status, and different agents, have separate states."""
    tracker = Tracker()
    tracker.apply(routing("IDLE", T0 + 10), T0, Source.LIVE)
    assert tracker.apply(presence("ON_QUEUE", T0), T0, Source.LIVE) is not None
    assert tracker.apply(routing("OFF_QUEUE", T0, agent=B), T0, Source.LIVE) is not None
    assert len(tracker) == 3


def test_load_restores_without_transitions() -> None:
    """Loaded states make no transitions, keep their `since`, and set the watermark: the
    loaded state heard again is a repeat, an older change is late."""
    tracker = Tracker()
    loaded = [((A, Kind.ROUTING), StatusState("INTERACTING", None, T0 - 5000, T0))]
    assert tracker.load(loaded) == 1
    assert list(tracker.states()) == loaded
    assert tracker.applied == 0
    assert tracker.apply(routing("INTERACTING", T0 - 5000), T0, Source.SNAPSHOT) is None
    late = tracker.apply(routing("IDLE", T0 - 1), T0, Source.LIVE)
    assert late is not None
    assert (late.from_value, late.late) == ("INTERACTING", True)
    assert tracker.state(A, Kind.ROUTING) == loaded[0][1]
    result = tracker.apply(routing("IDLE", T0 + 1), T0, Source.LIVE)
    assert result is not None
    assert result.from_value == "INTERACTING"


def test_forget_drops_both_kinds() -> None:
    """forget() drops an agent's presence and routing status, and says whether it knew any."""
    tracker = Tracker()
    tracker.apply(routing("IDLE", T0), T0, Source.LIVE)
    tracker.apply(presence("ON_QUEUE", T0), T0, Source.LIVE)
    tracker.apply(presence("ON_QUEUE", T0, agent=B), T0, Source.LIVE)
    assert A in tracker
    assert tracker.forget(A)
    assert not tracker.forget(A)
    assert A not in tracker
    assert tracker.state(A, Kind.ROUTING) is None
    assert len(tracker) == 1


def test_values_are_those_of_both_states() -> None:
    """values() gives the value of each state both() gives, None where a kind is unknown."""
    tracker = Tracker()
    tracker.apply(presence("BREAK", T0, COFFEE), T0, Source.LIVE)
    tracker.apply(routing("OFF_QUEUE", T0 + 5), T0 + 5, Source.LIVE)
    tracker.apply(routing("IDLE", T0, agent=B), T0, Source.LIVE)
    assert tracker.values(A) == ("BREAK", "OFF_QUEUE")
    assert tracker.values(A) == tuple(s.value for s in tracker.both(A) if s is not None)
    assert tracker.values(B) == (None, "IDLE")
    assert tracker.values("nobody") == (None, None)


# --- properties ---------------------------------------------------------------------------------

# Few agents, values and times, so that duplicates, ties and re-entries are common.
updates = st.builds(
    Update,
    agent_id=st.sampled_from([A, B]),
    kind=st.sampled_from(list(Kind)),
    value=st.sampled_from(["IDLE", "BREAK", "ON_QUEUE"]),
    event_ms=st.integers(T0, T0 + 4),
    definition_id=st.sampled_from([None, "", COFFEE, LUNCH]),
)
event_sets = st.lists(updates, min_size=1, max_size=30)


def run(events: list[Update]) -> tuple[Tracker, list[Transition]]:
    tracker = Tracker()
    emitted = []
    for seen, event in enumerate(events):
        transition = tracker.apply(event, T0 + seen, Source.LIVE)
        if transition is not None:
            emitted.append(transition)
    return tracker, emitted


def order_key(value: str, definition: str | None, at: int) -> tuple[int, str, str]:
    return (at, value, definition or "")


@settings(max_examples=150)
@given(events=event_sets, data=st.data())
def test_any_order_with_duplicates_gives_the_same_states(
    events: list[Update], data: st.DataObject
) -> None:
    """Any permutation of the same events, with repeats, ends in the same states."""
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10))
    shuffled = data.draw(st.permutations(events + repeats))
    assert dict(run(events)[0].states()) == dict(run(shuffled)[0].states())


def key(t: Transition) -> tuple[str, Kind, int, str, str]:
    return (t.agent_id, t.kind, t.event_ms, t.to_value, t.definition_id or "")


@settings(max_examples=150)
@given(events=event_sets)
def test_replaying_everything_changes_nothing(events: list[Update]) -> None:
    """Within the remembered window, applying every event again changes no state and emits only
    transitions already emitted (beyond it, the store's natural key ignores the repeats)."""
    distinct: dict[tuple[str, Kind], set[tuple[int, str, str]]] = defaultdict(set)
    for e in events:
        distinct[(e.agent_id, e.kind)].add(order_key(e.value, e.definition_id, e.event_ms))
    assume(all(len(d) <= RECENT for d in distinct.values()))
    tracker, emitted = run(events)
    before = dict(tracker.states())
    for event in events:
        again = tracker.apply(event, T0, Source.SNAPSHOT)
        assert again is None or key(again) in {key(t) for t in emitted}
    assert dict(tracker.states()) == before


@settings(max_examples=150)
@given(events=event_sets, data=st.data())
def test_every_untied_change_is_recorded_whatever_the_order(
    events: list[Update], data: st.DataObject
) -> None:
    """In any arrival order, every distinct event that shares its time with no other value is
    emitted (late or not): reordering loses no history."""
    shuffled = data.draw(st.permutations(events))
    _, emitted = run(shuffled)
    times: dict[tuple[str, Kind, int], set[tuple[str, str]]] = defaultdict(set)
    for e in events:
        times[(e.agent_id, e.kind, e.event_ms)].add((e.value, e.definition_id or ""))
    expected = {
        (agent, kind, at, value, definition)
        for (agent, kind, at), values in times.items()
        if len(values) == 1
        for value, definition in values
    }
    assert expected <= {key(t) for t in emitted}


@settings(max_examples=150)
@given(events=event_sets)
def test_transitions_move_forward_per_agent_and_kind(events: list[Update]) -> None:
    """Per agent and kind, current (not late) transitions never go back in time, and are equal
    only for a tie won."""
    _, emitted = run(events)
    last: dict[tuple[str, Kind], tuple[int, str, str]] = {}
    for transition in (t for t in emitted if not t.late):
        key = (transition.agent_id, transition.kind)
        current = order_key(transition.to_value, transition.definition_id, transition.event_ms)
        if key in last:
            assert current > last[key]
            assert transition.event_ms >= last[key][0]
        last[key] = current


@settings(max_examples=150)
@given(events=event_sets)
def test_final_state_is_the_largest_event(events: list[Update]) -> None:
    """Each final state is the event with the largest (time, value, definition), since its time."""
    expected: dict[tuple[str, Kind], tuple[int, str, str]] = defaultdict(lambda: (-1, "", ""))
    for e in events:
        key = (e.agent_id, e.kind)
        expected[key] = max(expected[key], order_key(e.value, e.definition_id, e.event_ms))
    tracker, _ = run(events)
    states = dict(tracker.states())
    assert set(states) == set(expected)
    for key, state in states.items():
        at, value, definition = expected[key]
        assert state == StatusState(value, definition or None, at, at)
    assert tracker.applied + tracker.duplicates + tracker.late + tracker.stale == len(events)
