"""The simulator's behaviour model: agents working shifts, and some getting stuck."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.clock import ScaledClock
from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.sim.behaviour import Behaviour, StuckEpisode
from monitor.sim.org import Change, Org, SimAgent
from monitor.sim.settings import SimSettings
from tests.support import eventually

MINUTE = 60_000
HOUR = 60 * MINUTE
# A Tuesday.
DAY = int(datetime(2024, 5, 14, tzinfo=UTC).timestamp() * 1000)
# Late shifts and stuck agents can run past midnight; by then every agent has logged out.
DAY_END = DAY + 30 * HOUR

# What the stuck-agent rules look for: ordinary days stay below these ...
LIMITS = {
    "BREAK": 30 * MINUTE,
    "MEAL": 60 * MINUTE,
    "AVAILABLE": 15 * MINUTE,
    "BUSY": 15 * MINUTE,
    "NOT_RESPONDING": 2 * MINUTE,
    "INTERACTING": 2 * HOUR,
}
# ... and each kind of stuck episode lasts at least this long, in this state.
EPISODE_STATES = {
    "not_responding": (Kind.ROUTING, {"NOT_RESPONDING"}, 5 * MINUTE),
    "ghost_interaction": (Kind.ROUTING, {"INTERACTING"}, 150 * MINUTE),
    "off_queue_working": (Kind.PRESENCE, {"AVAILABLE", "BUSY"}, 20 * MINUTE),
    "long_break": (Kind.PRESENCE, {"BREAK"}, 45 * MINUTE),
    "long_meal": (Kind.PRESENCE, {"MEAL"}, 75 * MINUTE),
    "on_queue_off_queue": (Kind.ROUTING, {"OFF_QUEUE"}, 3 * MINUTE),
}


@dataclass
class Sim:
    org: Org
    behaviour: Behaviour
    clock: ScaledClock


def build(
    agents: int,
    seed: int = 11,
    stuck: float = 0.2,
    start: int = DAY,
    timezone: str = "UTC",
    factor: float = 1.0,
) -> Sim:
    sim_settings = SimSettings(
        agents=agents,
        seed=seed,
        stuck_fraction=stuck,
        start_ms=start,
        timezone=timezone,
        time_factor=factor,
    )
    clock = ScaledClock(start_ms=start, factor=factor)
    org = Org(sim_settings, clock)
    return Sim(org, Behaviour(org, clock, sim_settings), clock)


def key(change: Change) -> tuple[object, ...]:
    return (change.agent_id, change.kind, change.value, change.definition_id, change.event_ms)


def by_agent(changes: Iterable[Change]) -> dict[str, list[Change]]:
    grouped: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        grouped[change.agent_id].append(change)
    return grouped


def segments(changes: list[Change], kind: Kind) -> list[tuple[str, int, int]]:
    """(value, start, end) of each state of one agent and kind that ended."""
    seq = [c for c in changes if c.kind is kind]
    return [(c.value, c.event_ms, n.event_ms) for c, n in pairwise(seq)]


def coupling_violations(sim: Sim) -> list[tuple[str, int, str, str]]:
    """States (lasting more than the 1 ms a coupled change may trail by) where routing does not
    follow presence, outside on_queue_off_queue episodes."""
    forced = defaultdict(list)
    for ep in sim.behaviour.episodes:
        if ep.kind == "on_queue_off_queue":
            forced[ep.agent_id].append(ep)
    bad = []
    for agent_id, changes in by_agent(sim.org.truth).items():
        presence, routing = "OFFLINE", "OFF_QUEUE"
        for change, following in zip(changes, [*changes[1:], None], strict=True):
            if change.kind is Kind.PRESENCE:
                presence = change.value
            else:
                routing = change.value
            if following is not None and following.event_ms - change.event_ms <= 1:
                continue
            at = change.event_ms
            if presence == "ON_QUEUE" and routing == "OFF_QUEUE":
                if any(ep.start_ms <= at < ep.end_ms for ep in forced[agent_id]):
                    continue
                bad.append((agent_id, at, presence, routing))
            elif presence != "ON_QUEUE" and routing != "OFF_QUEUE":
                bad.append((agent_id, at, presence, routing))
    return bad


def live_violations(sim: Sim, now: int) -> list[tuple[str, Presence, RoutingStatus]]:
    """Agents whose current routing does not follow their presence, outside forced episodes."""
    forced = {
        ep.agent_id
        for ep in sim.behaviour.episodes
        if ep.kind == "on_queue_off_queue" and ep.start_ms <= now < ep.end_ms
    }
    bad = []
    for agent in sim.org.agents.values():
        presence, routing = sim.org.presence_of(agent), agent.routing_status
        on_queue = presence is Presence.ON_QUEUE
        if on_queue == (routing is RoutingStatus.OFF_QUEUE) and agent.id not in forced:
            bad.append((agent.id, presence, routing))
    return bad


@pytest.fixture(scope="module")
def day() -> Sim:
    sim = build(200)
    sim.behaviour.advance_to(DAY_END)
    return sim


def test_same_seed_gives_the_same_day_whatever_the_steps() -> None:
    """A seed fixes the whole day, however finely it is advanced; another seed gives another day."""
    one_go = build(60, seed=5)
    one_go.behaviour.advance_to(DAY_END)
    stepped = build(60, seed=5)
    for hour in range(1, 31):
        stepped.behaviour.advance_to(DAY + hour * HOUR)
    other = build(60, seed=6)
    other.behaviour.advance_to(DAY_END)
    assert len(one_go.org.truth) > 1000
    assert [key(c) for c in one_go.org.truth] == [key(c) for c in stepped.org.truth]
    assert one_go.behaviour.episodes == stepped.behaviour.episodes
    assert [c.event_ms for c in one_go.org.truth] != [c.event_ms for c in other.org.truth]


def test_advance_to_applies_due_actions_in_order_and_counts_them() -> None:
    """advance_to applies exactly the actions due by then, in time order, and says how many."""
    sim = build(30)
    due = sim.behaviour.next_due_ms()
    assert due is not None
    assert sim.behaviour.advance_to(due - 1) == 0
    assert sim.org.truth == []
    applied = sim.behaviour.advance_to(DAY + 12 * HOUR)
    assert applied > 0
    times = [c.event_ms for c in sim.org.truth]
    assert times == sorted(times)
    assert times[0] == due
    assert times[-1] <= DAY + 12 * HOUR
    next_due = sim.behaviour.next_due_ms()
    assert next_due is not None
    assert next_due > DAY + 12 * HOUR


def test_every_agent_who_worked_did_a_whole_day(day: Sim) -> None:
    """Each agent that worked logged in, went On Queue, took interactions, breaks and logged out
    (a ghost interaction may swallow a short shift's only break)."""
    worked = by_agent(day.org.truth)
    assert 0.75 * 200 < len(worked) < 200  # most work on a Tuesday; some have the day off
    ghosts = {ep.agent_id for ep in day.behaviour.episodes if ep.kind == "ghost_interaction"}
    for agent_id, changes in worked.items():
        assert all(c.cause == "behaviour" for c in changes)
        presences = [c for c in changes if c.kind is Kind.PRESENCE]
        assert (presences[0].previous_value, presences[0].value) == ("OFFLINE", "AVAILABLE")
        assert presences[-1].value == "OFFLINE"
        values = {c.value for c in changes}
        assert "ON_QUEUE" in values
        assert "INTERACTING" in values
        if agent_id not in ghosts:
            assert sum(c.value == "INTERACTING" for c in changes) >= 10
            assert values & {"BREAK", "MEAL"}
    assert {a.routing_status for a in day.org.agents.values()} == {RoutingStatus.OFF_QUEUE}
    assert {day.org.presence_of(a) for a in day.org.agents.values()} == {Presence.OFFLINE}


def test_shifts_use_secondary_presences_and_time_off_queue(day: Sim) -> None:
    """Breaks and meals use both system and secondary definitions; some agents meet or train."""
    labels = Counter(
        day.org.definitions[c.definition_id].label
        for c in day.org.truth
        if c.kind is Kind.PRESENCE and c.definition_id is not None
    )
    for label in ("Break", "Coffee", "Meal", "Lunch", "On Queue", "Available", "Offline"):
        assert labels[label] > 0, label
    assert labels["Meeting"] + labels["Training"] + labels["E-learning"] + labels["Coaching"] > 0
    assert labels["Back office"] + labels["Busy"] > 0


def test_routing_follows_presence_outside_forced_episodes(day: Sim) -> None:
    """Routing is OFF_QUEUE whenever presence is not On Queue, and not OFF_QUEUE while On Queue,
    except during on_queue_off_queue episodes."""
    assert coupling_violations(day) == []
    assert any(ep.kind == "on_queue_off_queue" for ep in day.behaviour.episodes)


def test_stuck_episodes_have_the_configured_share_and_last_long(day: Sim) -> None:
    """About stuck_fraction of agent-days hold one episode, of every kind, each lasting past its
    threshold in the truth, from its start to its end."""
    episodes = day.behaviour.episodes
    worked = by_agent(day.org.truth)
    assert 0.12 < len(episodes) / len(worked) < 0.3
    assert len({ep.agent_id for ep in episodes}) == len(episodes)  # one a day at most
    assert {ep.kind for ep in episodes} == set(EPISODE_STATES)
    for ep in episodes:
        kind, values, minimum = EPISODE_STATES[ep.kind]
        states = {(start, end): value for value, start, end in segments(worked[ep.agent_id], kind)}
        assert states.get((ep.start_ms, ep.end_ms)) in values, ep
        assert ep.end_ms - ep.start_ms >= minimum


def test_ordinary_durations_stay_below_the_stuck_thresholds(day: Sim) -> None:
    """Outside stuck episodes, breaks, meals, Available/Busy, NOT_RESPONDING and interactions stay
    below the thresholds the rules use."""
    starts = {(ep.agent_id, ep.start_ms) for ep in day.behaviour.episodes}
    seen: Counter[str] = Counter()
    for agent_id, changes in by_agent(day.org.truth).items():
        for kind in Kind:
            for value, start, end in segments(changes, kind):
                if value in LIMITS and (agent_id, start) not in starts:
                    seen[value] += 1
                    assert end - start < LIMITS[value], (agent_id, value, start, end)
    assert min(seen[v] for v in LIMITS) > 10  # every state was actually checked


def test_offers_go_to_idle_agents_and_some_go_unanswered(day: Sim) -> None:
    """Interactions start only from IDLE; a small share of offers is not answered
    (NOT_RESPONDING), and every NOT_RESPONDING and interaction ends back in IDLE or off queue."""
    routing = [c for c in day.org.truth if c.kind is Kind.ROUTING]
    values = Counter(c.value for c in routing)
    assert 0.005 < values["NOT_RESPONDING"] / values["INTERACTING"] < 0.06
    busy = ("INTERACTING", "NOT_RESPONDING")
    assert {c.previous_value for c in routing if c.value in busy} == {"IDLE"}
    assert {c.value for c in routing if c.previous_value in busy} <= {"IDLE", "OFF_QUEUE"}


def test_shifts_follow_local_time_and_weekends_are_lighter() -> None:
    """Shifts start 07:00-10:00 or 12:00-14:30 local in the org's time zone, and fewer agents
    work on Saturday and Sunday."""
    zone = "America/New_York"
    monday = int(datetime(2024, 5, 13, tzinfo=ZoneInfo(zone)).timestamp() * 1000)
    sim = build(60, start=monday, timezone=zone)
    sim.behaviour.advance_to(monday + 7 * 24 * HOUR)
    logins = [
        datetime.fromtimestamp(c.event_ms / 1000, ZoneInfo(zone))
        for c in sim.org.truth
        if c.kind is Kind.PRESENCE and c.previous_value == "OFFLINE"
    ]
    minutes = [t.hour * 60 + t.minute for t in logins]
    assert all(7 * 60 <= m <= 10 * 60 + 10 or 12 * 60 <= m <= 14 * 60 + 40 for m in minutes)
    assert sum(m < 11 * 60 for m in minutes) > 0.65 * len(minutes)
    per_day = Counter(t.weekday() for t in logins)
    assert len(per_day) == 7
    assert max(per_day[5], per_day[6]) < min(per_day[d] for d in range(5))


def test_agents_hired_later_join_the_plan() -> None:
    """Agents added to the org after the model started work shifts like the others."""
    sim = build(10)
    sim.behaviour.advance_to(DAY + 5 * HOUR)
    hired = [sim.org.add_agent().id for _ in range(15)]
    sim.behaviour.advance_to(DAY_END)
    working = {c.agent_id for c in sim.org.truth}
    assert len(working & set(hired)) >= 8
    for agent_id in working & set(hired):
        assert sim.org.presence_of(sim.org.agent(agent_id)) is Presence.OFFLINE


def test_deactivated_secondary_definitions_are_not_used() -> None:
    """When the org deactivates Coffee and Lunch, agents take breaks and meals in the system ones."""
    sim = build(40)
    gone = {d.id for d in sim.org.definitions.values() if d.label in ("Coffee", "Lunch")}
    assert len(gone) == 2
    for def_id in gone:
        sim.org.definitions[def_id].deactivated = True
    sim.behaviour.advance_to(DAY_END)
    used = {c.definition_id for c in sim.org.truth if c.kind is Kind.PRESENCE}
    assert not used & gone
    assert sim.org.system_definition(Presence.BREAK).id in used


def test_an_agent_set_offline_mid_shift_logs_back_in() -> None:
    """Someone logging a working agent out does not stop the day: the agent logs back in."""
    sim = build(40, stuck=0.0)
    noon = DAY + 12 * HOUR
    sim.behaviour.advance_to(noon)
    agent = next(a for a in sim.org.agents.values() if sim.org.presence_of(a) is Presence.ON_QUEUE)
    sim.org.set_system_presence(agent.id, Presence.OFFLINE, cause="test", at_ms=noon)
    sim.behaviour.advance_to(noon + 10 * MINUTE)
    after = [c for c in sim.org.truth if c.agent_id == agent.id and c.event_ms > noon]
    assert after[0].cause == "behaviour"
    assert (after[0].previous_value, after[0].value) == ("OFFLINE", "AVAILABLE")
    sim.behaviour.advance_to(DAY_END)
    assert sim.org.presence_of(agent) is Presence.OFFLINE
    assert coupling_violations(sim) == []


def test_an_episode_cut_short_by_someone_else_ends_there() -> None:
    """An outside change during a stuck episode ends the episode at that change, and the agent
    carries on working from there."""
    sim = build(120, stuck=0.5)
    now = DAY
    ongoing: StuckEpisode | None = None
    while ongoing is None and now < DAY_END:
        now += 5 * MINUTE
        sim.behaviour.advance_to(now)
        ongoing = next(
            (
                ep
                for ep in sim.behaviour.episodes
                if ep.kind in ("long_break", "off_queue_working") and ep.start_ms < now < ep.end_ms
            ),
            None,
        )
    assert ongoing is not None
    sim.org.set_system_presence(ongoing.agent_id, Presence.ON_QUEUE, cause="test", at_ms=now)
    (cut,) = [
        ep
        for ep in sim.behaviour.episodes
        if (ep.agent_id, ep.start_ms) == (ongoing.agent_id, ongoing.start_ms)
    ]
    assert cut.end_ms == now
    sim.behaviour.advance_to(now + HOUR)
    assert any(
        c.agent_id == ongoing.agent_id and c.value == "INTERACTING" and c.event_ms > now
        for c in sim.org.truth
    )


# Outside changes: (agent index, minutes into the day, what someone does to the agent).
OUTSIDE = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.integers(0, 24 * 60),
        st.sampled_from(
            [
                "offline",
                "on_queue",
                "coffee",
                "available",
                "idle",
                "force_interacting",
                "force_off_queue",
                "deactivate",
                "reactivate",
                "drop_coffee",
            ]
        ),
    ),
    max_size=12,
)


def meddle(sim: Sim, agent_id: str, what: str, at: int) -> None:
    org = sim.org
    coffee = next(d for d in org.definitions.values() if d.label == "Coffee")
    if what == "offline":
        org.set_system_presence(agent_id, Presence.OFFLINE, cause="test", at_ms=at)
    elif what == "on_queue":
        org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test", at_ms=at)
    elif what == "available":
        org.set_system_presence(agent_id, Presence.AVAILABLE, cause="test", at_ms=at)
    elif what == "coffee":
        if not coffee.deactivated:
            org.set_presence(agent_id, coffee.id, cause="test", at_ms=at)
    elif what == "idle":
        if org.presence_of(org.agent(agent_id)) is Presence.ON_QUEUE:
            org.set_routing(agent_id, RoutingStatus.IDLE, cause="test", at_ms=at)
    elif what == "force_interacting":
        org.set_routing(agent_id, RoutingStatus.INTERACTING, cause="test", force=True, at_ms=at)
    elif what == "force_off_queue":
        org.set_routing(agent_id, RoutingStatus.OFF_QUEUE, cause="test", force=True, at_ms=at)
    elif what == "deactivate":
        org.set_state(agent_id, "inactive")
    elif what == "reactivate":
        org.set_state(agent_id, "active")
    else:
        coffee.deactivated = True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outside=OUTSIDE)
def test_outside_changes_never_break_the_model(
    outside: list[tuple[int, int, str]],
) -> None:
    """Whatever others do to agents mid-plan, the model carries on without error, ends the day
    with active agents logged out and consistent, and keeps episodes well-formed."""
    sim = build(6, seed=3, stuck=0.5)
    ids = list(sim.org.agents)
    last = DAY
    for index, minute, what in sorted(outside, key=lambda item: item[1]):
        last = DAY + minute * MINUTE
        sim.behaviour.advance_to(last)
        meddle(sim, ids[index], what, last)
    # Agents react within three minutes, and put right any inconsistent state left to them.
    sim.behaviour.advance_to(last + 4 * MINUTE)
    assert live_violations(sim, last + 4 * MINUTE) == []
    sim.behaviour.advance_to(DAY_END)
    for agent in sim.org.agents.values():
        assert sim.org.presence_of(agent) is Presence.OFFLINE
        assert agent.routing_status is RoutingStatus.OFF_QUEUE
    for ep in sim.behaviour.episodes:
        assert ep.start_ms <= ep.end_ms
    assert [v for v in coupling_violations(sim) if v[1] > last + 4 * MINUTE] == []
    # The model still plans tomorrow.
    assert sim.behaviour.next_due_ms() is not None


def state_after_first_move(sim: Sim, agent_id: str, after: int) -> tuple[str, str]:
    """An agent's presence and routing once its first move after `after` is made."""
    presence, routing = "OFFLINE", "OFF_QUEUE"
    move: int | None = None
    for change in sim.org.truth:
        if change.agent_id != agent_id:
            continue
        if move is not None and change.event_ms > move + 1:
            break
        if move is None and change.cause == "behaviour" and change.event_ms > after:
            move = change.event_ms
        if change.kind is Kind.PRESENCE:
            presence = change.value
        else:
            routing = change.value
    assert move is not None
    return presence, routing


def test_inconsistent_states_left_by_others_are_put_right() -> None:
    """An agent left Available but INTERACTING, or On Queue but OFF_QUEUE, is put right by the
    agent's first move after it."""
    sim = build(40, stuck=0.0)
    t = DAY + 11 * HOUR
    sim.behaviour.advance_to(t)
    working = [a for a in sim.org.agents.values() if sim.org.presence_of(a) is Presence.ON_QUEUE]
    first, second, *_ = working
    sim.org.set_system_presence(first.id, Presence.AVAILABLE, cause="test", at_ms=t)
    sim.org.set_routing(first.id, RoutingStatus.INTERACTING, cause="test", force=True, at_ms=t)
    sim.org.set_routing(second.id, RoutingStatus.OFF_QUEUE, cause="test", force=True, at_ms=t)
    assert len(live_violations(sim, t)) == 2
    sim.behaviour.advance_to(t + HOUR)
    for agent in (first, second):
        presence, routing = state_after_first_move(sim, agent.id, t)
        assert (presence == "ON_QUEUE") == (routing != "OFF_QUEUE"), (presence, routing)
    assert live_violations(sim, t + HOUR) == []
    # Interactions are only ever offered to agents that are idle on queue.
    offered = [
        c
        for c in sim.org.truth
        if c.agent_id in (first.id, second.id)
        and c.value in ("INTERACTING", "NOT_RESPONDING")
        and c.cause == "behaviour"
    ]
    assert offered
    assert {c.previous_value for c in offered} == {"IDLE"}


def test_deactivated_agents_log_out_and_stay_out() -> None:
    """An agent deactivated mid-shift is logged out at its next move and does not log in again
    until reactivated."""
    sim = build(40, stuck=0.0)
    noon = DAY + 12 * HOUR
    sim.behaviour.advance_to(noon)
    gone = [a for a in sim.org.agents.values() if sim.org.presence_of(a) is Presence.ON_QUEUE][:4]
    for agent in gone:
        sim.org.set_state(agent.id, "inactive")
    sim.behaviour.advance_to(DAY + 54 * HOUR)  # through the next day too
    for agent in gone:
        after = [c for c in sim.org.truth if c.agent_id == agent.id and c.event_ms > noon]
        presences = [c.value for c in after if c.kind is Kind.PRESENCE]
        assert presences[-1] == "OFFLINE"
        assert presences.count("OFFLINE") == 1
        assert after[-1].event_ms < noon + HOUR
    sim.org.set_state(gone[0].id, "active")
    count = len(sim.org.truth)
    sim.behaviour.advance_to(DAY + 5 * 24 * HOUR)
    assert any(c.agent_id == gone[0].id for c in sim.org.truth[count:])


def test_changes_without_events_are_noticed_at_the_next_move() -> None:
    """With no change events to go by, an agent checks its state before each move and carries on
    from what it finds instead of acting on a stale plan: logged out on a break, it logs in."""
    sim = build(40, stuck=0.0)
    sim.behaviour.close()
    t = DAY + 9 * HOUR
    on_break: list[SimAgent] = []
    while not on_break:
        t += 5 * MINUTE
        sim.behaviour.advance_to(t)
        on_break = [
            a
            for a in sim.org.agents.values()
            if sim.org.presence_of(a) in (Presence.BREAK, Presence.MEAL)
        ]
    agent = on_break[0]
    sim.org.set_system_presence(agent.id, Presence.OFFLINE, cause="test", at_ms=t)
    sim.behaviour.advance_to(t + 2 * HOUR)
    after = [c for c in sim.org.truth if c.agent_id == agent.id and c.event_ms > t]
    assert (after[0].previous_value, after[0].value) == ("OFFLINE", "AVAILABLE")
    assert live_violations(sim, t + 2 * HOUR) == []


async def test_run_follows_a_scaled_clock_and_stops_on_cancel() -> None:
    """run() applies actions as simulated time passes, never ahead of the clock, reacts to outside
    changes, and ends cleanly when cancelled."""
    start = DAY + 9 * HOUR
    sim = build(30, start=start, factor=600.0)  # ten simulated minutes a second
    task = asyncio.create_task(sim.behaviour.run(), name="behaviour")
    await eventually(lambda: len(sim.org.truth) >= 20, within=10, message="agents at work")
    now = sim.clock.now_ms()
    assert all(c.event_ms <= now for c in sim.org.truth)
    agent = next(
        a for a in sim.org.agents.values() if sim.org.presence_of(a) is not Presence.OFFLINE
    )
    changed = sim.org.set_system_presence(agent.id, Presence.OFFLINE, cause="test")
    at = changed[0].event_ms
    await eventually(
        lambda: any(
            c.agent_id == agent.id and c.event_ms > at and c.cause == "behaviour"
            for c in sim.org.truth
        ),
        within=10,
        message="the agent reacts",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    # The model is left consistent: it can be driven on by hand.
    assert sim.behaviour.advance_to(sim.clock.now_ms() + HOUR) > 0


def test_an_empty_org_has_nothing_to_do() -> None:
    """With no agents nothing is due, and advancing applies nothing."""
    sim = build(0)
    assert sim.behaviour.next_due_ms() is None
    assert sim.behaviour.advance_to(DAY_END) == 0
    assert sim.org.truth == []


def test_settings_refuse_an_unknown_time_zone() -> None:
    """A time zone that does not exist is refused with a clear error."""
    with pytest.raises(ValueError, match="Mars/Olympus"):
        SimSettings(timezone="Mars/Olympus")
