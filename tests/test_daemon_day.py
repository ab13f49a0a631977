"""A simulated working day of 2,000 agents with every fault Genesys can throw, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.core.model import Kind
from monitor.core.timefmt import parse_iso_ms
from monitor.sim.org import Change
from monitor.store import ExportRow
from tests.daemon import Running, running, sim_settings
from tests.support import eventually

FACTOR = 1000.0
HOUR_MS = 3_600_000
# Frames written to a socket in the last moments before it is dropped may never arrive (a real
# network loses them too); such changes are excused, in simulated time.
IN_FLIGHT_MS = 120_000


def morning_ms() -> int:
    day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


async def at(run: Running, when_ms: int) -> None:
    await run.sim.clock.sleep(max(0.0, (when_ms - run.sim.clock.now_ms()) / 1000))


async def inject_faults(run: Running, start_ms: int, rng: random.Random) -> None:
    """The day's faults, at fixed simulated times."""
    sim = run.sim
    sim.duplicate_frames(0.02)
    sim.reorder_frames(0.02)
    sim.malformed_frames(0.01)
    plan: list[tuple[float, Callable[[], object]]] = [
        (1.0, lambda: sim.drop_socket(rng.choice(sim.notifications.channel_ids()))),
        (2.0, sim.socket_closing),
        (3.0, sim.revoke_tokens),
        (4.0, lambda: sim.rate_limit_storm(120.0, retry_after=30)),
        (4.5, sim.drop_all_sockets),
        (5.0, lambda: sim.server_errors(20)),
        (5.1, lambda: sim.drop_socket(rng.choice(sim.notifications.channel_ids()))),
        (6.0, lambda: sim.expire_channels(rng.choice(sim.notifications.channel_ids()))),
        (7.0, lambda: sim.drop_socket(rng.choice(sim.notifications.channel_ids()))),
    ]
    for hours, fault in plan:
        await at(run, start_ms + int(hours * HOUR_MS))
        fault()


def recorded_rows(rows: list[ExportRow]) -> dict[tuple[str, str, int, str], list[str]]:
    by_key: dict[tuple[str, str, int, str], list[str]] = defaultdict(list)
    for row in rows:
        key = (row["agent_id"], row["kind"], parse_iso_ms(row["event_time"]), row["to"])
        by_key[key].append(row["source"])
    return by_key


@pytest.mark.slow
async def test_a_working_day_with_faults_ends_in_the_ground_truth(tmp_path: Path) -> None:
    """After a day of drops, rollovers, revoked tokens, 429s, 5xx and bad frames: the final state
    equals the truth (memory, database, metrics); every delivered change is recorded exactly once;
    every change missed by the sockets but read by a snapshot is recorded from it; the hours gone
    by are indexed by agent; no task died."""
    start = morning_ms()
    settings = sim_settings(
        agents=2000,
        start_ms=start,
        time_factor=FACTOR,
        seed=11,
        heartbeat_interval_s=600,
        channel_ttl_s=3 * 3600,
        subscribe_extends_expiry=False,
        token_lifetime_s=4 * 3600,
        socket_closing_grace_s=600,
    )
    async with running(
        tmp_path,
        settings,
        behaviour=True,
        MONITOR_GENESYS__USERS_PAGE_SIZE="500",
        MONITOR_CHANNELS__PING_AFTER_S="1500",
        MONITOR_CHANNELS__PONG_TIMEOUT_S="600",
        MONITOR_CHANNELS__BACKOFF_BASE_S="5",
        MONITOR_CHANNELS__BACKOFF_CAP_S="120",
        MONITOR_CHANNELS__ROLLOVER_BEFORE_EXPIRY_S="1800",
        MONITOR_CHANNELS__TOKEN_REFRESH_BEFORE_S="1800",
    ) as run:
        faults = asyncio.create_task(inject_faults(run, start, random.Random(11)))
        await at(run, start + 8 * HOUR_MS)
        await faults
        await run.sim.stop_behaviour()  # the day is over: no more changes
        run.sim.duplicate_frames(0)
        run.sim.reorder_frames(0)
        await eventually(lambda: all(s.up for s in run.daemon.pool.slots.values()), within=30)
        # A frame may still be held back by the reorder fault: one more snapshot settles it.
        await run.daemon.reconciler.snapshot(run.daemon.pool.watched())
        await run.converged(within=30)
        assert not run.task.done(), "the daemon stopped on its own"

        truth = run.truth()
        # The database and the metrics agree with memory, which agrees with the truth.
        stored = {k: v.value for k, v in (await run.daemon.store.load_states()).items()}
        assert stored == truth
        text = await run.metrics()
        for (agent, kind), value in truth.items():
            if kind is Kind.ROUTING:
                line = (
                    f'genesys_agent_routing_status{{agent_id="{agent}",routing_status="{value}"}} 1'
                )
            else:
                line = f'genesys_agent_presence{{agent_id="{agent}",presence="{value}"}} 1'
            assert line in text

        rows = [row async for row in run.daemon.store.export(None, None, None)]
        recorded = recorded_rows(rows)
        assert all(len(sources) == 1 for sources in recorded.values()), "recorded twice"

        # The hours the daemon's clock has left behind are in the per-agent index, and an
        # agent's own export finds its rows there and in the hour still open.
        with contextlib.closing(sqlite3.connect(run.daemon.store.path)) as conn:
            (indexed_until,) = conn.execute("SELECT until_ms FROM agent_index_until").fetchone()
        assert indexed_until >= start + 7 * HOUR_MS
        for agent in sorted({row["agent_id"] for row in rows})[:20]:
            mine = [row async for row in run.daemon.store.export(None, None, agent)]
            assert mine == [row for row in rows if row["agent_id"] == agent]

        changes: list[Change] = [c for c in run.sim.org.truth if c.is_transition]
        delivered = run.sim.notifications.delivered
        drops = [
            f.at_ms
            for f in run.sim.faults.log
            if f.name in ("drop_socket", "drop_all_sockets", "revoke_tokens", "expire_channels")
        ]
        missing = [
            c
            for c in changes
            if c.seq in delivered
            and (c.agent_id, c.kind.value, c.event_ms, c.value) not in recorded
            and not any(0 <= d - c.event_ms <= IN_FLIGHT_MS for d in drops)
        ]
        assert missing == [], f"{len(missing)} delivered changes were not recorded"

        # A change the sockets never delivered, but that a snapshot read (the agent's state was
        # read over REST while it was current), is recorded from that snapshot.
        assert await run.daemon.store.gaps(), "the faults must have caused gaps"
        by_agent: dict[tuple[str, Kind], list[Change]] = defaultdict(list)
        for c in changes:
            by_agent[(c.agent_id, c.kind)].append(c)
        recovered = 0
        for (agent, kind), history in by_agent.items():
            reads = run.sim.org.reads.get((agent, kind), [])
            for c, after in zip(history, [*history[1:], None], strict=True):
                until = after.event_ms if after is not None else 2**63
                if c.seq in delivered or not any(c.event_ms <= r < until for r in reads):
                    continue
                sources = recorded.get((agent, kind.value, c.event_ms, c.value))
                assert sources == ["snapshot"], c
                recovered += 1
        assert recovered > 0, "no change was recovered from a snapshot"
    assert run.task.exception() is None
