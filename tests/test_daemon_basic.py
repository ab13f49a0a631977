"""The daemon against the simulator: start, record, reconnect, stop."""

from __future__ import annotations

import time
from pathlib import Path

import structlog.testing

from monitor.core.model import Kind, Presence, RoutingStatus, Source
from tests.daemon import running
from tests.metrics_util import sample
from tests.support import eventually


async def test_starts_records_live_changes_and_stops(tmp_path: Path) -> None:
    """A presence change in the org is recorded live, in memory, in the metrics and on disk."""
    async with running(tmp_path) as run:
        agent = next(iter(run.sim.org.agents))
        run.sim.org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        await eventually(lambda: run.state(agent, Kind.ROUTING) == RoutingStatus.IDLE)
        await run.converged()
        text = await run.metrics()
        assert f'genesys_agent_routing_status{{agent_id="{agent}",routing_status="IDLE"}} 1' in text
        rows = [row async for row in run.daemon.store.export(None, None, agent)]
        assert [(r["kind"], r["to"], r["source"]) for r in rows][-2:] == [
            ("presence", "ON_QUEUE", Source.LIVE.value),
            ("routing", "IDLE", Source.LIVE.value),
        ]
    assert run.task.done()
    assert run.task.exception() is None


async def test_change_during_a_drop_is_recovered_by_a_snapshot(tmp_path: Path) -> None:
    """A change made while the socket is down is recorded from the snapshot, and the gap too."""
    async with running(tmp_path) as run:
        agent = next(iter(run.sim.org.agents))
        # Same tick: the frame finds no socket and is lost, as Genesys does not queue.
        run.sim.drop_all_sockets()
        run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
        await eventually(lambda: run.state(agent, Kind.PRESENCE) == Presence.BREAK, within=10)
        await run.converged()
        rows = [row async for row in run.daemon.store.export(None, None, agent)]
        assert rows[-1]["to"] == "BREAK"
        assert rows[-1]["source"] == Source.SNAPSHOT.value
        await eventually(run.daemon.store.gaps, within=5, message="gap recorded")
        gaps = await run.daemon.store.gaps()
        assert gaps[0].reason == "closed"
        assert gaps[0].end_ms >= gaps[0].start_ms


async def test_socket_closing_rolls_over_without_a_gap(tmp_path: Path) -> None:
    """socket_closing: a new socket is opened before the old one goes; nothing is lost."""
    async with running(tmp_path) as run:
        slot = next(iter(run.daemon.pool.slots.values()))
        m = run.daemon.metrics
        run.sim.socket_closing()
        await eventually(
            lambda: sample(m, "monitor_channel_rollovers_total", reason="socket_closing") == 1
        )
        agent = next(iter(run.sim.org.agents))
        run.sim.org.set_system_presence(agent, Presence.MEAL, cause="test")
        await run.converged()
        assert slot.up
        assert await run.daemon.store.gaps() == []


async def test_a_stalled_event_loop_is_measured_and_logged(tmp_path: Path) -> None:
    """Work that holds the event loop up shows on monitor_event_loop_lag_seconds and is logged."""
    async with running(tmp_path) as run:
        m = run.daemon.metrics
        await eventually(lambda: sample(m, "monitor_event_loop_lag_seconds_count") > 0)
        assert sample(m, "monitor_event_loop_lag_seconds_bucket", le="1.0") == sample(
            m, "monitor_event_loop_lag_seconds_count"
        )
        with structlog.testing.capture_logs() as logs:
            time.sleep(1.3)  # noqa: ASYNC251 - the stall under test: the daemon shares this loop
            await eventually(
                lambda: (
                    sample(m, "monitor_event_loop_lag_seconds_count")
                    > sample(m, "monitor_event_loop_lag_seconds_bucket", le="1.0")
                )
            )
        stalls = [e for e in logs if e["event"] == "event_loop_blocked"]
        assert len(stalls) == 1
        assert stalls[0]["seconds"] >= 1.0
