"""Frame faults of the simulator's websockets: delay, duplicates, reordering, malformed frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from monitor.core.model import Presence
from tests.sim.notifications_harness import Sim, events, is_event, running_sim
from tests.support import scaled


def _status(frame: dict[str, Any]) -> str:
    status: str = frame["eventBody"]["routingStatus"]["status"]
    return status


async def _routing_channel(sim: Sim) -> tuple[str, ClientConnection]:
    agent = sim.agent_ids()[0]
    _, ws = await sim.connected_channel([f"v2.users.{agent}.routingStatus"])
    return agent, ws


async def _raw_frames(ws: ClientConnection, count: int) -> list[str]:
    """The next `count` text frames that are not heartbeats, unparsed."""
    out: list[str] = []
    async with asyncio.timeout(scaled(5)):
        while len(out) < count:
            message = await ws.recv()
            assert isinstance(message, str)
            if '"channel.metadata"' not in message:
                out.append(message)
    return out


def _valid_event(text: str) -> bool:
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return (
        is_event(frame)
        and isinstance(frame.get("eventBody"), dict)
        and isinstance(frame["eventBody"].get("routingStatus"), dict)
    )


async def test_duplicate_fault_sends_event_frames_twice() -> None:
    """With duplicate_rate 1 every event frame arrives twice; read live, 0 stops it."""
    async with running_sim() as sim:
        agent, ws = await _routing_channel(sim)
        sim.faults.duplicate_rate = 1.0
        sim.put_on_queue(agent)
        twice = await events(ws, 2)
        sim.faults.duplicate_rate = 0.0
        sim.toggle_routing(agent)
        sim.toggle_routing(agent)
        after = await events(ws, 2)
        await ws.close()
    assert twice[0] == twice[1]
    assert [_status(f) for f in after] == ["INTERACTING", "IDLE"]
    assert sim.notifications.injected["duplicate"] == 1


async def test_reorder_fault_swaps_an_event_with_the_next_frame() -> None:
    """With reorder_rate 1 each event frame is held back and sent after the one that follows it."""
    async with running_sim() as sim:
        agent, ws = await _routing_channel(sim)
        sim.faults.reorder_rate = 1.0
        sim.put_on_queue(agent)  # IDLE
        sim.toggle_routing(agent)  # INTERACTING
        sim.toggle_routing(agent)  # IDLE
        sim.toggle_routing(agent)  # INTERACTING
        received = await events(ws, 4)
        await ws.close()
    starts = [f["eventBody"]["routingStatus"]["startTime"] for f in received]
    assert [_status(f) for f in received] == ["INTERACTING", "IDLE", "INTERACTING", "IDLE"]
    assert starts[0] > starts[1]
    assert starts[2] > starts[3]


async def test_a_held_back_frame_follows_the_next_heartbeat() -> None:
    """A frame held back by the reorder fault is not lost when no event follows: a heartbeat does."""
    async with running_sim(heartbeat_interval_s=0.05) as sim:
        agent, ws = await _routing_channel(sim)
        sim.faults.reorder_rate = 1.0
        sim.put_on_queue(agent)
        async with asyncio.timeout(scaled(5)):
            kinds: list[str] = []
            while not kinds or kinds[-1] != "event":
                frame = json.loads(await ws.recv())
                kinds.append("event" if is_event(frame) else "heartbeat")
        await ws.close()
    assert kinds[-2:] == ["heartbeat", "event"]


async def test_malformed_fault_precedes_the_real_frame() -> None:
    """With malformed_rate 1 a broken frame comes before each real event, which still arrives."""
    async with running_sim() as sim:
        agent, ws = await _routing_channel(sim)
        sim.faults.malformed_rate = 1.0
        sim.put_on_queue(agent)
        for _ in range(7):
            sim.toggle_routing(agent)
        received = await _raw_frames(ws, 16)
        await ws.close()
    broken, real = received[0::2], received[1::2]
    assert not any(_valid_event(text) for text in broken)
    assert all(_valid_event(text) for text in real)
    assert [_status(json.loads(t)) for t in real] == ["IDLE", "INTERACTING"] * 4
    assert sim.notifications.injected["malformed"] == 8


async def test_frame_delay_holds_every_frame_back() -> None:
    """With frame_delay_s set, frames arrive no sooner than the delay, in order, none lost."""
    async with running_sim(time_factor=100.0) as sim:
        agent, ws = await _routing_channel(sim)
        sim.faults.frame_delay_s = 20.0
        pushed_at = sim.clock.now_ms()
        sim.put_on_queue(agent)
        sim.toggle_routing(agent)
        received = await events(ws, 2)
        arrived_at = sim.clock.now_ms()
        await ws.close()
    assert [_status(f) for f in received] == ["IDLE", "INTERACTING"]
    assert arrived_at - pushed_at >= 20_000


async def test_every_change_is_delivered_once_without_faults() -> None:
    """Without faults, each change arrives exactly once and is recorded as delivered."""
    async with running_sim() as sim:
        agent, ws = await _routing_channel(sim)
        seqs = [c.seq for c in sim.org.set_system_presence(agent, Presence.ON_QUEUE, cause="t")]
        for _ in range(20):
            seqs += sim.toggle_routing(agent)
        routing_seqs = seqs[1:]
        received = await events(ws, 21)
        await ws.close()
    starts = [f["eventBody"]["routingStatus"]["startTime"] for f in received]
    assert starts == sorted(set(starts))
    assert set(routing_seqs) <= sim.notifications.delivered
    assert seqs[0] not in sim.notifications.delivered  # the presence change had no subscriber
