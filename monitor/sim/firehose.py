"""The firehose: presence and routing frames pushed to subscribed sockets as fast as they go out,
or at a set rate, for the benchmarks.

Changes made through the Org (the behaviour model, the REST and admin APIs) each cost more than
sending their frame: the ground truth, the coupling of presence and routing, the listeners. So
the org alone cannot outrun a fast client, and a throughput benchmark driven by it would measure
the simulator. The firehose builds its frames ahead of time, as Genesys shapes them, and appends
them straight to the sockets' queues, so the sockets' senders are the only work left.

Its frames are outside the ground truth: the org's agents, `truth` and listeners never hear of
them, and a snapshot read during a run returns the state from before it. Measure with it; never
check correctness against the truth with it.

Every frame is a real change for a client that knew the org's state when the plan began, provided
every agent was On Queue and IDLE then (`put_on_queue`): each agent goes round six changes (routing
INTERACTING, IDLE; presence BREAK, routing OFF_QUEUE; presence ON_QUEUE, routing IDLE), with event
times that strictly increase per agent. Frames go only to the channels of one OAuth client, so a
benchmark can feed one consumer at a time while others stay connected.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.sim import frames
from monitor.sim.notifications import Notifications
from monitor.sim.org import Org

# One agent's round of changes; it ends where it began (On Queue, IDLE).
CYCLE: tuple[tuple[Kind, str], ...] = (
    (Kind.ROUTING, RoutingStatus.INTERACTING.value),
    (Kind.ROUTING, RoutingStatus.IDLE.value),
    (Kind.PRESENCE, Presence.BREAK.value),
    (Kind.ROUTING, RoutingStatus.OFF_QUEUE.value),
    (Kind.PRESENCE, Presence.ON_QUEUE.value),
    (Kind.ROUTING, RoutingStatus.IDLE.value),
)
_CAUSE = "firehose"
_FRAME_HEAD = '{"topicName":"'


@dataclass(frozen=True, slots=True)
class Shot:
    """One frame of the firehose: an agent's change, and the frame that carries it."""

    agent_id: str
    kind: Kind
    value: str
    event_ms: int
    name: str  # the topic name the frame was built with (the canonical one)
    frame: str


class Firehose:
    """Plans frames for the org's active agents and pushes them to one client's sockets."""

    def __init__(
        self, org: Org, notifications: Notifications, clock: Clock, *, seed: int = 1
    ) -> None:
        self._org = org
        self._notifications = notifications
        self._clock = clock
        self._rng = random.Random(f"firehose-{seed}")
        agents = [a.id for a in org.agents.values() if a.state == "active"]
        # Shuffled once, so consecutive frames spread over every channel.
        self.agents: list[str] = self._rng.sample(agents, len(agents))
        self._step = dict.fromkeys(self.agents, 0)
        self._last_ms = dict.fromkeys(self.agents, 0)
        self._next_agent = 0
        self._definitions = {
            Presence.BREAK.value: org.system_definition(Presence.BREAK).id,
            Presence.ON_QUEUE.value: org.system_definition(Presence.ON_QUEUE).id,
        }

    def put_on_queue(self) -> int:
        """Put every agent On Queue and IDLE through the org (before any consumer connects);
        returns how many agents changed."""
        org = self._org
        changed = 0
        for agent_id in self.agents:
            agent = org.agent(agent_id)
            if org.presence_of(agent) is not Presence.ON_QUEUE:
                org.set_system_presence(agent_id, Presence.ON_QUEUE, cause=_CAUSE)
                changed += 1
            if agent.routing_status is not RoutingStatus.IDLE:
                org.set_routing(agent_id, RoutingStatus.IDLE, cause=_CAUSE, force=True)
                changed += 1
        return changed

    # --- planning -------------------------------------------------------------------------------

    def shot(self, event_ms: int) -> Shot:
        """The next agent's next change at `event_ms` (later, if the agent's last one was not
        earlier): agents take turns, so each agent's changes are spread out."""
        agents = self.agents
        agent_id = agents[self._next_agent]
        self._next_agent = (self._next_agent + 1) % len(agents)
        step = self._step[agent_id]
        self._step[agent_id] = (step + 1) % len(CYCLE)
        event_ms = max(event_ms, self._last_ms[agent_id] + 1)
        self._last_ms[agent_id] = event_ms
        kind, value = CYCLE[step]
        if kind is Kind.PRESENCE:
            name = f"v2.users.{agent_id}.presence"
            body = frames.presence_body(self._definitions[value], value, "", event_ms)
        else:
            name = f"v2.users.{agent_id}.routingStatus"
            body = frames.routing_body(agent_id, value, event_ms)
        frame = frames.event(name, body, frames.correlation_id(self._rng))
        return Shot(agent_id, kind, value, event_ms, name, frame)

    def plan(self, count: int, start_ms: int, rate_hint: float) -> list[Shot]:
        """`count` shots built ahead, their event times spread from `start_ms` as if sent at
        `rate_hint` a second, so the time stamps look like those of a real stream."""
        if count < 0 or rate_hint <= 0:
            raise ValueError("count must be >= 0 and rate_hint positive")
        step_ms = 1000 / rate_hint
        return [self.shot(start_ms + int(i * step_ms)) for i in range(count)]

    # --- pushing --------------------------------------------------------------------------------

    def push(self, shot: Shot, client_id: str) -> int:
        """Queue one shot on every connected socket of `client_id` subscribed to its agent;
        returns on how many sockets."""
        subscribed = self._notifications.channels.index.get(shot.agent_id)
        if not subscribed:
            return 0
        pushed = 0
        presence = shot.kind is Kind.PRESENCE
        for channel in subscribed.values():
            socket = channel.socket
            if channel.client_id != client_id or socket is None or socket.closing:
                continue
            route = channel.routes[shot.agent_id]
            for name in route.presence if presence else route.routing:
                if name == shot.name:
                    socket.push_event(shot.frame, -1)
                else:
                    # Subscribed under another spelling: the frame carries that spelling.
                    tail = shot.frame[len(_FRAME_HEAD) + len(shot.name) :]
                    socket.push_event(_FRAME_HEAD + name + tail, -1)
                pushed += 1
        return pushed

    async def pour(
        self,
        shots: Sequence[Shot],
        client_id: str,
        *,
        max_backlog: int = 20_000,
        chunk: int = 2_000,
    ) -> int:
        """Push every shot as fast as the sockets take them; returns how many frames were queued.

        The queues are kept below `max_backlog` frames, so the pace is set by the sockets (and so
        by the consumer reading them), and memory stays bounded.
        """
        push = self.push
        queued = 0
        backlog = self._notifications.backlog
        for start in range(0, len(shots), chunk):
            for shot in shots[start : start + chunk]:
                queued += push(shot, client_id)
            await asyncio.sleep(0)
            # The sockets' queues have no "room" event to wait on; a short poll is cheap next to
            # the thousands of frames each millisecond of sending takes.
            while True:
                if backlog() <= max_backlog:
                    break
                await asyncio.sleep(0.001)
        return queued

    async def stream(
        self,
        rate: float,
        seconds: float,
        client_id: str,
        *,
        shots: Sequence[Shot] | None = None,
        tick_s: float = 0.002,
        on_shot: Callable[[Shot, float], None] | None = None,
    ) -> int:
        """Push shots at `rate` a second for `seconds` (real time), or until `shots` run out;
        returns how many. The shots are `shots`, built ahead with `plan`, or else built on the
        fly, with the clock's time at the push as event time. `on_shot(shot, perf_counter)`
        hears each as it is queued.
        """
        if rate <= 0 or seconds < 0:
            raise ValueError("rate must be positive and seconds >= 0")
        clock = self._clock
        started = time.perf_counter()
        sent = 0
        while True:
            now = time.perf_counter()
            elapsed = now - started
            if elapsed >= seconds or (shots is not None and sent >= len(shots)):
                return sent
            due = max(0, int(elapsed * rate) - sent)
            if shots is None:
                event_ms = clock.now_ms()
                batch = [self.shot(event_ms) for _ in range(due)]
            else:
                batch = list(shots[sent : sent + due])
            for shot in batch:
                self.push(shot, client_id)
                if on_shot is not None:
                    on_shot(shot, time.perf_counter())
            sent += len(batch)
            await asyncio.sleep(tick_s)
