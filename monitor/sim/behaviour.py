"""The behaviour model of the simulated org: agents working shifts, and some getting stuck.

Every agent-day is planned from (seed, agent id, local date) alone: whether the agent works, when
the shift starts and ends in the org's time zone, when the breaks, the meal and the meetings fall,
and whether the day holds a stuck episode. So one agent's day does not depend on which other agents
exist, on agents hired later, or on changes someone else makes to another agent.

Within a day the agent is a small state machine. Its next action sits in one heap for the whole
org as (due_ms, seq, plan), so applying an action costs O(log n) and only one entry per agent is
alive; the day's random draws (idle gaps, handle times, unanswered offers) come from the agent-day's
own generator as the day unfolds.

Every change goes through the Org with cause "behaviour", at the action's due time. Changes made by
others (the REST API, a test) are noticed by an Org listener: a stuck episode they interrupt ends
there, and the agent reacts a little later by replanning from whatever state it was left in.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from monitor.clock import ScaledClock
from monitor.core.model import Presence, RoutingStatus
from monitor.sim.org import Change, Org, SimAgent
from monitor.sim.settings import SimSettings

CAUSE = "behaviour"

EpisodeKind = Literal[
    "not_responding",
    "ghost_interaction",
    "off_queue_working",
    "long_break",
    "long_meal",
    "on_queue_off_queue",
]
EPISODE_KINDS: tuple[EpisodeKind, ...] = (
    "not_responding",
    "ghost_interaction",
    "off_queue_working",
    "long_break",
    "long_meal",
    "on_queue_off_queue",
)

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_WEEKDAY_WORK = 0.88  # share of weekdays an agent works; the rest are days off
_WEEKEND_WORK = 0.3
_LATE_SHIFT = 0.2
_PART_TIME = 0.15
# Queue time planned between two activities. Longer than any interaction, so an activity pushed
# back by a call still ends before the next one is due, and two breaks never touch.
_GAP_MS = 35 * MINUTE
_OVERDUE_MS = 45 * MINUTE  # a planned activity this late is skipped
_BATCH = 2000  # actions per slice in run(), so a far-behind model does not starve the event loop
_IDLE_CHECK_MS = MINUTE  # run() looks for newly hired agents at least this often

_LOG_HANDLE_MS = math.log(5 * MINUTE)  # median handle time (talk plus wrap-up): five minutes

# Optional activities of a day off the queue: presence, preferred secondary label, minutes.
_EXTRAS: tuple[tuple[Presence, str | None, float, float], ...] = (
    (Presence.MEETING, None, 20, 60),
    (Presence.TRAINING, "E-learning", 30, 90),
    (Presence.BUSY, "Back office", 5, 12),
    (Presence.AWAY, "Coaching", 15, 30),
)

# Actions, kept in the low three bits of an entry's seq.
_LOGIN, _FREE, _OFFER, _ROUTE_END, _ACT_END, _LOGOUT, _RESUME = range(7)


@dataclass(frozen=True, slots=True)
class StuckEpisode:
    """A stretch of time in which an agent is stuck in one state, as the rules should see it.

    `start_ms` is the event time of the change into the state; `end_ms` the event time of the
    change out of it, earlier than planned when someone else changed the agent meanwhile.
    """

    agent_id: str
    kind: EpisodeKind
    start_ms: int
    end_ms: int


class _Dice(random.Random):
    """The generator of one agent-day (or of an agent's profile), seeded from the org's seed."""

    def chance(self, p: float) -> bool:
        return self.random() < p

    def minutes(self, low: float, high: float) -> int:
        """A duration in ms, uniform between `low` and `high` minutes."""
        return int(self.uniform(low, high) * MINUTE)


@dataclass(slots=True)
class _Activity:
    """A planned stretch off the ordinary queue work, at a nominal time.

    Presence activities (break, meal, meeting, ...) set `presence`, preferring the org's secondary
    definition `label` when it has one; routing episodes set `routing` while staying On Queue.
    """

    start_ms: int
    duration_ms: int
    presence: Presence | None = None
    label: str | None = None
    routing: RoutingStatus | None = None
    episode: EpisodeKind | None = None


@dataclass(slots=True)
class _Day:
    dice: _Dice
    login_ms: int
    logout_ms: int
    pending: list[_Activity]  # latest first, so the next one pops off the end
    idle_mean_ms: float
    not_responding_rate: float


class _Plan:
    """One agent's profile, current day and next action."""

    __slots__ = (
        "agent",
        "agent_id",
        "date",
        "day",
        "dice",
        "episode",
        "expect_definition",
        "expect_routing",
        "length_ms",
        "part_time",
        "seq",
        "shift_minute",
    )

    def __init__(self, agent: SimAgent, profile: _Dice) -> None:
        # The Org never removes an agent object (users are deactivated or deleted, not dropped),
        # so holding it saves a lookup per action.
        self.agent = agent
        self.agent_id = agent.id
        late = profile.chance(_LATE_SHIFT)
        # Shifts start on the quarter hour: 07:00-10:00, late ones 12:00-14:30 local.
        self.shift_minute = (
            (12 * 60 + 15 * int(profile.uniform(0, 11)))
            if late
            else (7 * 60 + 15 * int(profile.uniform(0, 13)))
        )
        self.part_time = profile.chance(_PART_TIME)
        self.length_ms = profile.minutes(240, 300) if self.part_time else profile.minutes(480, 540)
        self.dice = profile
        self.date = date.min
        self.day: _Day | None = None
        self.seq = -1
        self.episode = -1  # index in Behaviour.episodes of the episode under way
        self.expect_definition = ""
        self.expect_routing = RoutingStatus.OFF_QUEUE


class Behaviour:
    """Drives the org's agents through their working days. Deterministic for settings.seed."""

    def __init__(self, org: Org, clock: ScaledClock, settings: SimSettings) -> None:
        self._org = org
        self._clock = clock
        self._seed = settings.seed
        self._stuck_fraction = settings.stuck_fraction
        self._zone = ZoneInfo(settings.timezone)
        self.episodes: list[StuckEpisode] = []
        self._heap: list[tuple[int, int, _Plan]] = []
        self._seq = itertools.count()
        self._plans: dict[str, _Plan] = {}
        self._labels = {
            (d.system_presence, d.labels.get("en_US", "")): d.id
            for d in org.definitions.values()
            if not d.primary
        }
        # Planning starts at the configured start, not at whatever the clock shows by now, so
        # that the same settings give the same day.
        self._now = clock.now_ms() if settings.start_ms is None else settings.start_ms
        self._wake = asyncio.Event()
        self._stop_listening = org.listen(self._on_change)
        self._join_new_agents()

    # --- public ---------------------------------------------------------------------------------

    def advance_to(self, now_ms: int) -> int:
        """Apply every planned action due at or before `now_ms`, in due order; return how many."""
        return self._advance(now_ms, None)

    def next_due_ms(self) -> int | None:
        """When the next planned action is due; None when nothing is planned."""
        self._join_new_agents()
        heap = self._heap
        while heap and heap[0][1] != heap[0][2].seq:
            heapq.heappop(heap)  # superseded by a replan
        return heap[0][0] if heap else None

    async def run(self) -> None:
        """Follow the clock: apply actions as they fall due, until cancelled."""
        while True:
            self._wake.clear()
            if self._advance(self._clock.now_ms(), _BATCH, live=True) >= _BATCH:
                await asyncio.sleep(0)  # far behind: catch up in slices
                continue
            due = self.next_due_ms()
            now = self._clock.now_ms()
            wait_ms = _IDLE_CHECK_MS if due is None else min(due - now, _IDLE_CHECK_MS)
            if wait_ms <= 0:
                await asyncio.sleep(0)
                continue
            # An outside change plans a reaction that may fall before `due`: it wakes us.
            try:
                async with self._clock.timeout(wait_ms / SECOND):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def close(self) -> None:
        """Stop listening to the org's changes. The model can still be advanced: each agent then
        notices others' changes at its next move, by checking its state first."""
        self._stop_listening()

    # --- the heap -------------------------------------------------------------------------------

    def _advance(self, now_ms: int, limit: int | None, *, live: bool = False) -> int:
        """Apply due actions. `live`: following the clock, an action is stamped with the time it
        is applied (never before its due time), as Genesys stamps a change when it happens; a
        change stamped in the past could contradict what the API showed meanwhile."""
        self._join_new_agents()
        heap = self._heap
        count = 0
        while heap and heap[0][0] <= now_ms and (limit is None or count < limit):
            due, seq, plan = heapq.heappop(heap)
            if seq != plan.seq:
                continue
            at = max(due, self._clock.now_ms()) if live else due
            self._now = max(self._now, at)
            self._step(plan, at)
            count += 1
        if limit is None or count < limit:
            self._now = max(self._now, now_ms)
        return count

    def _push(self, plan: _Plan, action: int, due_ms: int) -> None:
        # The action lives in the seq's low three bits, so an entry is a plain tuple and an entry
        # superseded by a replan is recognised by its seq alone.
        plan.seq = next(self._seq) * 8 + action
        heapq.heappush(self._heap, (due_ms, plan.seq, plan))

    def _join_new_agents(self) -> None:
        agents = self._org.agents
        if len(agents) == len(self._plans):
            return
        for agent in itertools.islice(agents.values(), len(self._plans), None):
            self._join(agent, self._now)

    def _join(self, agent: SimAgent, t: int) -> None:
        plan = _Plan(agent, _Dice(self._seed_for(agent.id, "profile")))
        self._plans[agent.id] = plan
        plan.expect_definition = agent.presence_definition_id
        plan.expect_routing = agent.routing_status
        offline = self._org.presence_of(agent) is Presence.OFFLINE
        plan.date = self._local_date(t)
        plan.day = self._plan_day(plan, plan.date)
        if plan.day is not None:
            plan.dice = plan.day.dice
        if plan.day is not None and plan.day.logout_ms > t:
            if plan.day.login_ms > t and offline:
                self._push(plan, _LOGIN, plan.day.login_ms)
            else:  # mid-shift: log in now, staggered over a few minutes
                self._push(plan, _RESUME, t + plan.dice.minutes(0, 3))
        elif offline:
            self._next_day(plan, t)
        else:
            self._push(plan, _RESUME, t + plan.dice.minutes(0.5, 3))

    # --- planning a day -------------------------------------------------------------------------

    def _seed_for(self, agent_id: str, tag: str) -> int:
        text = f"{self._seed}:behaviour:{agent_id}:{tag}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")

    def _local_date(self, t: int) -> date:
        return datetime.fromtimestamp(t / SECOND, self._zone).date()

    def _local_ms(self, day: date, minute: int) -> int:
        # Wall-clock arithmetic in the org's zone, so a 07:30 shift is at 07:30 across DST.
        local = datetime(day.year, day.month, day.day, tzinfo=self._zone)
        return int((local + timedelta(minutes=minute)).timestamp()) * SECOND

    def _plan_day(self, plan: _Plan, day: date) -> _Day | None:
        """The agent's plan for one local date; None for a day off."""
        dice = _Dice(self._seed_for(plan.agent_id, day.isoformat()))
        if not dice.chance(_WEEKEND_WORK if day.weekday() >= 5 else _WEEKDAY_WORK):
            return None
        login = self._local_ms(day, plan.shift_minute) + dice.minutes(0, 10)
        length = plan.length_ms + dice.minutes(-15, 15)
        acts = self._activities(dice, login, length, plan.part_time)
        end = login + length
        for act in acts:
            if act.episode != "ghost_interaction":
                end = max(end, act.start_ms + act.duration_ms + 20 * MINUTE)
        acts.reverse()
        return _Day(
            dice=dice,
            login_ms=login,
            logout_ms=end,
            pending=acts,
            idle_mean_ms=dice.uniform(0.75, 4) * MINUTE,
            not_responding_rate=dice.uniform(0.01, 0.04),
        )

    def _activities(self, dice: _Dice, login: int, length: int, part_time: bool) -> list[_Activity]:
        def at(low: float, high: float) -> int:
            return login + dice.minutes(low, high)

        def brk() -> _Activity:
            label = "Coffee" if dice.chance(0.5) else None
            return _Activity(0, dice.minutes(10, 20), Presence.BREAK, label)

        def extra() -> _Activity:
            presence, label, low, high = dice.choice(_EXTRAS)
            return _Activity(0, dice.minutes(low, high), presence, label)

        planned: list[tuple[int, _Activity]] = []
        if part_time:
            planned.append((at(90, 150), brk()))
            if dice.chance(0.25):
                planned.append((at(30, 60), extra()))
        else:
            planned.append((at(100, 140), brk()))
            meal = _Activity(0, dice.minutes(30, 55), Presence.MEAL, dice.choice(("Lunch", None)))
            planned.append((at(210, 270), meal))
            if dice.chance(0.4):
                planned.append((at(290, 340), extra()))
            planned.append((at(380, 420), brk()))
            if dice.chance(0.15):
                planned.append((at(30, 60), _Activity(0, dice.minutes(5, 12), Presence.BUSY)))
        if dice.chance(self._stuck_fraction):
            self._add_episode(dice, planned, login + dice.minutes(45, length / MINUTE - 90))
        planned.sort(key=lambda item: item[0])
        # Lay the activities out in order, keeping queue time before each. A ghost interaction
        # takes no room: whatever it runs over is dropped when the agent comes free.
        acts: list[_Activity] = []
        earliest = login + 30 * MINUTE
        for target, act in planned:
            act.start_ms = max(target, earliest)
            if act.episode != "ghost_interaction":
                earliest = act.start_ms + act.duration_ms + _GAP_MS
            acts.append(act)
        return acts

    def _add_episode(self, dice: _Dice, planned: list[tuple[int, _Activity]], at: int) -> None:
        kind = dice.choice(EPISODE_KINDS)
        if kind in ("long_break", "long_meal"):
            presence = Presence.BREAK if kind == "long_break" else Presence.MEAL
            low, high = (45, 90) if kind == "long_break" else (75, 120)
            same = [act for _, act in planned if act.presence is presence]
            if same:  # the agent overstays one of the day's breaks or its meal
                act = dice.choice(same)
                act.duration_ms, act.episode = dice.minutes(low, high), kind
                return
            planned.append((at, _Activity(0, dice.minutes(low, high), presence, None, None, kind)))
        elif kind == "off_queue_working":
            presence, label = dice.choice(
                ((Presence.AVAILABLE, None), (Presence.BUSY, None), (Presence.BUSY, "Back office"))
            )
            planned.append((at, _Activity(0, dice.minutes(20, 90), presence, label, None, kind)))
        else:
            status, low, high = {
                "not_responding": (RoutingStatus.NOT_RESPONDING, 5, 20),
                "ghost_interaction": (RoutingStatus.INTERACTING, 150, 300),
                "on_queue_off_queue": (RoutingStatus.OFF_QUEUE, 3, 30),
            }[kind]
            planned.append((at, _Activity(0, dice.minutes(low, high), None, None, status, kind)))

    def _next_day(self, plan: _Plan, t: int) -> None:
        """Plan the agent's next working day after the current one, and its login."""
        day = plan.date
        for _ in range(60):
            day += timedelta(days=1)
            plan.date, plan.day = day, self._plan_day(plan, day)
            if plan.day is not None and plan.day.login_ms > t:
                plan.dice = plan.day.dice
                self._push(plan, _LOGIN, plan.day.login_ms)
                return
        plan.seq = -1  # never works: nothing planned

    # --- acting ---------------------------------------------------------------------------------

    def _step(self, plan: _Plan, t: int) -> None:
        action = plan.seq % 8
        agent = plan.agent
        if action != _RESUME and (
            agent.presence_definition_id != plan.expect_definition
            or agent.routing_status is not plan.expect_routing
        ):
            # Changed behind our back without a change event: replan from what is there now.
            self._end_episode(plan, t)
            action = _RESUME
        try:
            if agent.state != "active":
                self._log_out(plan, agent, t)
            elif action == _LOGIN:
                self._log_in(plan, agent, t)
            elif action == _OFFER:
                self._offer(plan, agent, t)
            elif action == _ROUTE_END:
                plan.episode = -1
                self._org.set_routing(agent.id, RoutingStatus.IDLE, cause=CAUSE, at_ms=t)
                self._free(plan, agent, t)
            elif action == _ACT_END:
                plan.episode = -1
                self._activity_ended(plan, agent, t)
            elif action == _LOGOUT:
                self._log_out(plan, agent, t)
            elif action == _FREE:
                self._free(plan, agent, t)
            else:
                self._resume(plan, agent, t)
        except (KeyError, ValueError):
            # A definition deleted or deactivated meanwhile, say: try again shortly from
            # whatever state the agent is in, rather than stop the whole org.
            self._push(plan, _RESUME, t + plan.dice.minutes(0.5, 3))
        plan.expect_definition = agent.presence_definition_id
        plan.expect_routing = agent.routing_status

    def _resume(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        """Carry on from whatever state the agent is in now."""
        day = plan.day
        if day is None or t >= day.logout_ms:
            self._log_out(plan, agent, t)
        elif t < day.login_ms:
            self._set_offline(agent, t)
            self._push(plan, _LOGIN, day.login_ms)
        elif self._org.presence_of(agent) is Presence.OFFLINE:
            self._log_in(plan, agent, t)
        else:
            self._free(plan, agent, t)

    def _log_in(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        if self._org.presence_of(agent) is not Presence.OFFLINE:
            self._free(plan, agent, t)
            return
        self._off_queue(agent, self._org.system_definition(Presence.AVAILABLE).id, t)
        self._push(plan, _FREE, t + plan.dice.minutes(1, 5))

    def _free(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        """The agent is free for work: start a due activity, log out, or wait for an offer."""
        day = plan.day
        if day is None or t >= day.logout_ms:
            self._end_shift(plan, agent, t)
            return
        act = self._take_due(day, t)
        if act is not None:
            self._begin(plan, agent, act, t)
            return
        self._on_queue(agent, t)
        self._wait_for_offer(plan, day, t)

    def _wait_for_offer(self, plan: _Plan, day: _Day, t: int) -> None:
        gap = int(min(max(day.dice.expovariate(1 / day.idle_mean_ms), 5 * SECOND), 20 * MINUTE))
        limit = day.logout_ms
        if day.pending:
            limit = min(limit, day.pending[-1].start_ms)
        if t + gap < limit:
            self._push(plan, _OFFER, t + gap)
        else:
            self._push(plan, _FREE, limit)

    def _offer(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        day = plan.day
        if day is None:
            self._resume(plan, agent, t)
            return
        dice = day.dice
        if dice.chance(day.not_responding_rate):
            # Offered but not answered: no routing until the agent is back (well under 2 min).
            status, length = RoutingStatus.NOT_RESPONDING, int(dice.uniform(10, 90) * SECOND)
        else:
            # Talk plus wrap-up, around five minutes, never more than half an hour.
            handle = dice.lognormvariate(_LOG_HANDLE_MS, 0.55)
            status, length = (
                RoutingStatus.INTERACTING,
                int(min(max(handle, 45 * SECOND), 30 * MINUTE)),
            )
        self._org.set_routing(agent.id, status, cause=CAUSE, at_ms=t)
        self._push(plan, _ROUTE_END, agent.routing_start_ms + length)

    @staticmethod
    def _take_due(day: _Day, t: int) -> _Activity | None:
        pending = day.pending
        while pending and pending[-1].start_ms <= t:
            act = pending.pop()
            # A break or meeting is taken late after a call, but one overdue by far more than any
            # call lasts (a ghost interaction, an outside change) is skipped; episodes always
            # happen.
            if act.episode is not None or t < act.start_ms + _OVERDUE_MS:
                return act
        return None

    def _begin(self, plan: _Plan, agent: SimAgent, act: _Activity, t: int) -> None:
        if act.routing is None:
            assert act.presence is not None
            self._off_queue(agent, self._definition(act), t)
            start = agent.presence_modified_ms
            self._push(plan, _ACT_END, start + act.duration_ms)
        else:
            self._on_queue(agent, t)
            # force: On Queue but OFF_QUEUE is one of the inconsistent states real orgs show.
            self._org.set_routing(agent.id, act.routing, cause=CAUSE, force=True, at_ms=t)
            start = agent.routing_start_ms
            self._push(plan, _ROUTE_END, start + act.duration_ms)
        if act.episode is not None:
            plan.episode = len(self.episodes)
            self.episodes.append(
                StuckEpisode(agent.id, act.episode, start, start + act.duration_ms)
            )

    def _activity_ended(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        day = plan.day
        if day is None or t >= day.logout_ms:
            self._log_out(plan, agent, t)
            return
        self._on_queue(agent, t)
        if day.pending and day.pending[-1].start_ms <= t:
            # Overran into the next activity: back on queue for a moment first, so two
            # activities never run into each other.
            self._push(plan, _FREE, t + plan.dice.minutes(1, 3))
        else:
            self._wait_for_offer(plan, day, t)

    def _end_shift(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        if self._org.presence_of(agent) is Presence.ON_QUEUE and plan.dice.chance(0.5):
            # Off queue for the last notes of the day, then log out.
            self._off_queue(agent, self._org.system_definition(Presence.AVAILABLE).id, t)
            self._push(plan, _LOGOUT, t + plan.dice.minutes(1, 3))
        else:
            self._log_out(plan, agent, t)

    def _log_out(self, plan: _Plan, agent: SimAgent, t: int) -> None:
        self._end_episode(plan, t)
        self._set_offline(agent, t)
        self._next_day(plan, t)

    def _set_offline(self, agent: SimAgent, t: int) -> None:
        self._off_queue(agent, self._org.system_definition(Presence.OFFLINE).id, t)

    def _off_queue(self, agent: SimAgent, definition_id: str, t: int) -> None:
        """Set a presence other than On Queue, with routing OFF_QUEUE as it goes."""
        self._org.set_presence(agent.id, definition_id, cause=CAUSE, at_ms=t)
        # The Org couples routing only when leaving On Queue; coming from a state someone else
        # left inconsistent (Available but INTERACTING, say) it needs putting right here.
        if agent.routing_status is not RoutingStatus.OFF_QUEUE:
            self._org.set_routing(
                agent.id, RoutingStatus.OFF_QUEUE, cause=CAUSE, force=True, at_ms=t
            )

    def _on_queue(self, agent: SimAgent, t: int) -> None:
        self._org.set_system_presence(agent.id, Presence.ON_QUEUE, cause=CAUSE, at_ms=t)
        if agent.routing_status is not RoutingStatus.IDLE:
            self._org.set_routing(agent.id, RoutingStatus.IDLE, cause=CAUSE, at_ms=t)

    def _definition(self, act: _Activity) -> str:
        """The secondary definition the activity prefers, or the system one if that is gone."""
        assert act.presence is not None
        if act.label is not None:
            def_id = self._labels.get((act.presence, act.label))
            definition = self._org.definitions.get(def_id) if def_id else None
            if definition is not None and not definition.deactivated:
                return definition.id
        return self._org.system_definition(act.presence).id

    # --- changes made by others -----------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.cause == CAUSE or not change.is_transition:
            return
        plan = self._plans.get(change.agent_id)
        if plan is None:
            return
        self._end_episode(plan, change.event_ms)
        # The agent notices a little later and carries on from the new state. Only planning
        # happens here: the Org is in the middle of a change and must not be re-entered.
        self._push(plan, _RESUME, max(self._now, change.event_ms) + plan.dice.minutes(0.5, 3))
        self._wake.set()

    def _end_episode(self, plan: _Plan, t: int) -> None:
        if plan.episode < 0:
            return
        episode = self.episodes[plan.episode]
        if t < episode.end_ms:
            self.episodes[plan.episode] = replace(episode, end_ms=max(t, episode.start_ms))
        plan.episode = -1
