"""Topic names and the sharding planner: limits, stability, repair, and the per-slot diff."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.core.topics import (
    ChannelSlot,
    Limits,
    SlotChange,
    agent_of,
    combined_topic,
    diff,
    is_agent_id,
    plan,
    presence_topic,
    routing_topic,
    slot_topics,
    topics_for,
)
from monitor.errors import CapacityError

AGENT = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"


def agents(count: int, start: int = 0) -> list[str]:
    """Deterministic, sortable agent ids."""
    return [str(uuid.UUID(int=start + i)) for i in range(count)]


def check(assignment: dict[ChannelSlot, frozenset[str]], roster: list[str], limits: Limits) -> None:
    """Every roster agent placed exactly once, within every limit, and no empty slot."""
    placed = [a for members in assignment.values() for a in members]
    assert sorted(placed) == sorted(set(roster))
    for slot, members in assignment.items():
        assert members
        assert 0 <= slot.client < limits.clients
        assert 0 <= slot.number < limits.channels_per_client
        assert len(members) * limits.topics_per_agent <= limits.topics_per_channel


def test_topic_names() -> None:
    """Topic names use Genesys's spelling: camelCase routingStatus, query form when combined."""
    assert presence_topic(AGENT) == f"v2.users.{AGENT}.presence"
    assert routing_topic(AGENT) == f"v2.users.{AGENT}.routingStatus"
    assert combined_topic(AGENT) == f"v2.users.{AGENT}?presence&routingStatus"
    assert topics_for(AGENT, combined=True) == (combined_topic(AGENT),)
    assert topics_for(AGENT, combined=False) == (presence_topic(AGENT), routing_topic(AGENT))


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (f"v2.users.{AGENT}.presence", AGENT),
        (f"v2.users.{AGENT}.routingStatus", AGENT),
        (f"v2.users.{AGENT}?presence&routingStatus", AGENT),
        (f"V2.USERS.{AGENT.upper()}.PRESENCE", AGENT),
        (f"v2.users.{AGENT}.activity", AGENT),
        (f"v2.users.{AGENT}", None),
        (f"v2.users.{AGENT}.", None),
        ("v2.users.not-a-uuid.presence", None),
        ("channel.metadata", None),
        (f"v2.system.token_revoked.{AGENT}", None),
        ("", None),
    ],
)
def test_agent_of(topic: str, expected: str | None) -> None:
    """agent_of finds the (lower-cased) agent of any per-user topic form, else None."""
    assert agent_of(topic) == expected


def test_is_agent_id() -> None:
    """Only UUID-shaped ids are agent ids."""
    assert is_agent_id(AGENT)
    assert is_agent_id(AGENT.upper())
    assert not is_agent_id(AGENT[:-1])
    assert not is_agent_id(f"{AGENT}.presence")


def test_limits() -> None:
    """Capacity follows from 1,000 topics a channel, 20 channels a client, topics per agent."""
    assert Limits.for_topics(clients=1, combined=True).capacity == 20_000
    assert Limits.for_topics(clients=3, combined=False).capacity == 30_000
    assert Limits(clients=1, topics_per_agent=3).agents_per_channel == 333
    with pytest.raises(ValueError, match="OAuth client"):
        Limits(clients=0)
    with pytest.raises(ValueError, match="topics_per_agent"):
        Limits(clients=1, topics_per_agent=0)


def test_capacity_error_names_clients_needed() -> None:
    """A roster beyond capacity raises CapacityError with the number of clients needed."""
    limits = Limits(clients=2, channels_per_client=2, topics_per_channel=10, topics_per_agent=2)
    with pytest.raises(CapacityError) as caught:
        plan({}, agents(41), limits)
    assert (caught.value.agents, caught.value.capacity, caught.value.clients_needed) == (41, 20, 5)
    assert "5 OAuth clients" in str(caught.value)
    check(plan({}, agents(20), limits), agents(20), limits)


def test_first_plan_spreads_over_clients_evenly() -> None:
    """From nothing, agents go to as few channels as needed, spread over clients, evenly."""
    limits = Limits(clients=3, topics_per_channel=1000)
    result = plan({}, agents(2500), limits)
    check(result, agents(2500), limits)
    assert sorted(result) == [ChannelSlot(0, 0), ChannelSlot(1, 0), ChannelSlot(2, 0)]
    assert sorted(len(m) for m in result.values()) == [833, 833, 834]


def test_separate_topics_halve_room() -> None:
    """With two topics an agent, a channel holds 500 agents."""
    limits = Limits.for_topics(clients=1, combined=False)
    result = plan({}, agents(1001), limits)
    check(result, agents(1001), limits)
    assert len(result) == 3


def test_replanning_same_roster_changes_nothing() -> None:
    """Planning again with the same roster returns the same assignment."""
    limits = Limits(clients=2, topics_per_channel=100)
    first = plan({}, agents(450), limits)
    assert plan(first, reversed(agents(450)), limits) == first
    assert diff(first, plan(first, agents(450), limits)) == ()


def test_new_agent_fills_existing_room_in_one_slot() -> None:
    """A new agent joins an existing channel with room: exactly one slot changes."""
    limits = Limits(clients=2, topics_per_channel=100)
    first = plan({}, agents(150), limits)
    newcomer = agents(1, start=10_000)
    second = plan(first, agents(150) + newcomer, limits)
    (change,) = diff(first, second)
    assert change.added == frozenset(newcomer)
    assert (change.removed, change.opened, change.closed) == (frozenset(), False, False)


def test_newcomers_go_to_the_largest_room_first() -> None:
    """Several newcomers fill the emptiest existing channel before touching another."""
    limits = Limits(clients=1, topics_per_channel=10)
    current = {
        ChannelSlot(0, 0): frozenset(agents(8)),
        ChannelSlot(0, 1): frozenset(agents(3, start=100)),
    }
    roster = agents(8) + agents(3, start=100) + agents(5, start=200)
    result = plan(current, roster, limits)
    assert result[ChannelSlot(0, 1)] == frozenset(agents(3, start=100) + agents(5, start=200))
    assert result[ChannelSlot(0, 0)] == current[ChannelSlot(0, 0)]


def test_full_channels_open_a_new_slot_on_the_least_used_client() -> None:
    """When every channel is full, the newcomer opens a slot on the client with fewest slots."""
    limits = Limits(clients=2, topics_per_channel=2)
    current = {
        ChannelSlot(0, 0): frozenset(agents(2)),
        ChannelSlot(0, 1): frozenset(agents(2, start=10)),
        ChannelSlot(1, 0): frozenset(agents(2, start=20)),
    }
    roster = [a for m in current.values() for a in m] + agents(1, start=30)
    changes = diff(current, plan(current, roster, limits))
    assert changes == (
        SlotChange(ChannelSlot(1, 1), frozenset(agents(1, start=30)), frozenset(), True, False),
    )


def test_departures_remove_agents_and_close_emptied_slots() -> None:
    """Departed agents are removed; a slot left empty is closed."""
    limits = Limits(clients=1, topics_per_channel=3)
    current = {
        ChannelSlot(0, 0): frozenset(agents(3)),
        ChannelSlot(0, 1): frozenset(agents(2, start=10)),
    }
    roster = agents(2)
    changes = diff(current, plan(current, roster, limits))
    assert changes == (
        SlotChange(ChannelSlot(0, 0), frozenset(), frozenset(agents(1, start=2)), False, False),
        SlotChange(ChannelSlot(0, 1), frozenset(), frozenset(agents(2, start=10)), False, True),
    )


def test_emptied_slot_is_reused_by_newcomers() -> None:
    """Newcomers arriving as a channel's agents all leave take that channel, not a new one."""
    limits = Limits(clients=1, topics_per_channel=2)
    current = {ChannelSlot(0, 0): frozenset(agents(2)), ChannelSlot(0, 1): frozenset(agents(2, 9))}
    roster = agents(2) + agents(1, start=50)
    result = plan(current, roster, limits)
    assert result == {
        ChannelSlot(0, 0): frozenset(agents(2)),
        ChannelSlot(0, 1): frozenset(agents(1, start=50)),
    }


def test_assignment_breaking_new_limits_is_repaired() -> None:
    """After the limits shrink, agents beyond a slot's room or in lost slots are placed again."""
    old = Limits(clients=2, topics_per_channel=4)
    current = plan({}, agents(12), old)
    current = {**current, ChannelSlot(1, 0): current[ChannelSlot(1, 0)] | {agents(1)[0]}}
    new = Limits(clients=1, topics_per_channel=4, topics_per_agent=2)
    result = plan(current, agents(12), new)
    check(result, agents(12), new)


def test_slot_topics_lists_every_topic_sorted() -> None:
    """A slot's topic list is every topic of its agents, in a stable order."""
    members = agents(2)
    assert slot_topics(reversed(members), combined=False) == [
        presence_topic(members[0]),
        routing_topic(members[0]),
        presence_topic(members[1]),
        routing_topic(members[1]),
    ]


# --- properties ---------------------------------------------------------------------------------

limits_strategy = st.builds(
    Limits,
    clients=st.integers(1, 3),
    topics_per_agent=st.integers(1, 2),
    channels_per_client=st.integers(1, 4),
    topics_per_channel=st.integers(2, 12),
)
pool = agents(80)
rosters = st.lists(st.sampled_from(pool), max_size=80)


@settings(max_examples=200)
@given(limits=limits_strategy, rosters=st.lists(rosters, min_size=1, max_size=5))
def test_any_sequence_of_rosters_stays_within_limits(
    limits: Limits, rosters: list[list[str]]
) -> None:
    """Across roster changes every agent is placed once, within limits, and kept where it was."""
    current: dict[ChannelSlot, frozenset[str]] = {}
    for roster in rosters:
        if len(set(roster)) > limits.capacity:
            with pytest.raises(CapacityError):
                plan(current, roster, limits)
            continue
        result = plan(current, roster, limits)
        check(result, roster, limits)
        where = {a: slot for slot, members in current.items() for a in members}
        for slot, members in result.items():
            for agent in members:
                assert where.get(agent, slot) == slot
        assert plan(result, roster, limits) == result
        current = result


@settings(max_examples=200)
@given(limits=limits_strategy, roster=rosters, newcomer=st.sampled_from(agents(5, start=999)))
def test_adding_one_agent_changes_one_slot(
    limits: Limits, roster: list[str], newcomer: str
) -> None:
    """Adding one agent to a planned roster changes exactly one slot, by that agent."""
    assume(len(set(roster)) + 1 <= limits.capacity)
    before = plan({}, roster, limits)
    (change,) = diff(before, plan(before, [*roster, newcomer], limits))
    assert change.added == {newcomer}
    assert not change.removed
