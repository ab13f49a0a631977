"""Restarts: the daemon resumes from its database, also after being killed mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

from monitor.core.model import Kind, Presence
from monitor.sim.server import Simulator
from tests.daemon import running, sim_settings
from tests.support import eventually, scaled


async def test_time_in_status_survives_a_restart(tmp_path: Path) -> None:
    """After a restart the state-start timestamps are those of the original changes."""
    settings = sim_settings()
    async with Simulator.start(settings) as sim:
        agent = next(iter(sim.org.agents))
        async with running(tmp_path, simulator=sim) as run:
            sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
            await run.converged()
            since = run.daemon.tracker.state(agent, Kind.PRESENCE)
            assert since is not None
        stopped_ms = sim.clock.now_ms()
        async with running(tmp_path, simulator=sim) as run:
            again = run.daemon.tracker.state(agent, Kind.PRESENCE)
            assert again is not None
            assert again.since_ms == since.since_ms
            text = await run.metrics()
            line = f'genesys_agent_presence_changed_timestamp_seconds{{agent_id="{agent}"}}'
            assert f"{line} {since.since_ms / 1000:.3f}" in text
            # The time the monitor was not running is a gap for every agent.
            await eventually(run.daemon.store.gaps, message="downtime gap")
            (gap,) = await run.daemon.store.gaps()
            assert (gap.channel_id, gap.agents, gap.reason) == ("*", (), "monitor not running")
            assert gap.start_ms <= stopped_ms <= gap.end_ms


async def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    """A daemon killed with SIGKILL mid-stream keeps every committed row, and the file is sound."""
    db = tmp_path / "monitor.db"
    async with Simulator.start(sim_settings(agents=200, time_factor=600), behaviour=True) as sim:
        client = sim.settings.clients[0]
        env = {
            **os.environ,
            "MONITOR_GENESYS__API_URL": f'"{sim.api_url}"',
            "MONITOR_STORAGE__PATH": f'"{db}"',
            "MONITOR_HTTP__LISTEN": '"127.0.0.1:0"',
            "MONITOR_LOG__FORMAT": '"json"',
            "GENESYS_CLIENT_ID": client.client_id,
            "GENESYS_CLIENT_SECRET": client.client_secret,
        }
        config = tmp_path / "config.toml"
        config.write_text("")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config",
            str(config),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        def committed() -> int:
            if not db.exists():
                return 0
            with sqlite3.connect(db) as conn:
                try:
                    return int(conn.execute("SELECT count(*) FROM transitions").fetchone()[0])
                except sqlite3.OperationalError:
                    return 0

        try:
            await eventually(lambda: committed() > 500, within=60, message="rows committed")
            before = committed()
        finally:
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), scaled(10))
        assert child.returncode == -signal.SIGKILL
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert committed() >= before
        # And the daemon starts again on that file, resuming from it.
        async with running(tmp_path, simulator=sim) as run:
            assert len(run.daemon.tracker) > 0
            await run.converged(within=20)
