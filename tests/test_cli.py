"""The command line, run as a real process: exit codes, messages, and the file commands."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

from monitor.core.model import Presence
from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings
from monitor.store import SCHEMA_VERSION
from tests.daemon import running, sim_settings
from tests.support import scaled

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"


async def monitor(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), scaled(60))
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


def sim_env(sim: Simulator, db: Path, secret: str | None = None) -> dict[str, str]:
    client = sim.settings.clients[0]
    return {
        "MONITOR_GENESYS__API_URL": f'"{sim.api_url}"',
        "MONITOR_GENESYS__USERS_PAGE_SIZE": "500",
        "MONITOR_STORAGE__PATH": f'"{db}"',
        "MONITOR_HTTP__LISTEN": '"127.0.0.1:0"',
        "MONITOR_LOG__FORMAT": '"json"',
        "GENESYS_CLIENT_ID": client.client_id,
        "GENESYS_CLIENT_SECRET": secret or client.client_secret,
    }


async def test_check_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    """A bad config: exit 2, one line per problem, each naming its key."""
    config = tmp_path / "config.toml"
    config.write_text('[genesys]\nregion = "atlantis"\n[storage]\nretention_days = -1\n')
    code, _out, err = await monitor(
        "check-config", "--config", str(config), env={"GENESYS_CLIENT_ID": ""}
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert any(
        line.startswith("config: genesys.region: unknown region 'atlantis'") for line in lines
    )
    assert "config: storage.retention_days: must be greater than 0, got -1" in lines
    assert any("GENESYS_CLIENT_ID" in line for line in lines)


async def test_check_config_prints_the_settings_without_secrets(tmp_path: Path) -> None:
    """A good config: exit 0 and the resolved settings, secrets hidden."""
    code, out, _err = await monitor(
        "check-config",
        "--config",
        str(SHIPPED_CONFIG),
        env={"GENESYS_CLIENT_ID": "the-id", "GENESYS_CLIENT_SECRET": "the-secret"},
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["genesys"]["clients"][0]["client_secret"] == "***"
    assert "the-secret" not in out


async def test_bad_usage_exits_2() -> None:
    """Unknown commands and options are usage errors."""
    code, _out, err = await monitor("export", "--since", "yesterday")
    assert code == 2
    assert "not an ISO date or time" in err
    code, _out, _err = await monitor("frobnicate")
    assert code == 2


async def test_refused_credentials_exit_1_with_one_clear_line(tmp_path: Path) -> None:
    """Wrong credentials end `monitor run` with exit code 1 and a line saying why."""
    config = tmp_path / "config.toml"
    config.write_text("")
    async with Simulator.start(SimSettings(agents=3)) as sim:
        code, _out, err = await monitor(
            "run", "--config", str(config), env=sim_env(sim, tmp_path / "m.db", secret="nope")
        )
    assert code == 1
    fatal = [json.loads(line) for line in err.splitlines() if '"fatal"' in line]
    assert fatal
    assert fatal[0]["kind"] == "AuthError"
    assert "refused a token" in fatal[0]["error"]


async def test_sigterm_stops_cleanly_with_exit_0(tmp_path: Path) -> None:
    """SIGTERM: the daemon drains and exits 0."""
    config = tmp_path / "config.toml"
    config.write_text("")
    db = tmp_path / "m.db"
    async with Simulator.start(SimSettings(agents=20, requests_per_minute=0)) as sim:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config",
            str(config),
            env={**os.environ, **sim_env(sim, db)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stderr is not None
        lines: list[str] = []

        async def wait_ready() -> None:
            assert child.stderr is not None
            while line := await child.stderr.readline():
                lines.append(line.decode())
                if '"event": "ready"' in lines[-1]:
                    return

        await asyncio.wait_for(wait_ready(), scaled(30))
        child.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(child.stderr.read(), scaled(30))
        await child.wait()
    assert child.returncode == 0, "".join(lines) + rest.decode()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_too_many_agents_for_one_client_are_refused(tmp_path: Path) -> None:
    """25,000 agents over one OAuth client: refused at start, saying two clients are needed."""
    config = tmp_path / "config.toml"
    config.write_text("")
    async with Simulator.start(SimSettings(agents=25_000, requests_per_minute=0)) as sim:
        code, _out, err = await monitor(
            "run", "--config", str(config), env=sim_env(sim, tmp_path / "m.db")
        )
    assert code == 1
    refused = [json.loads(line) for line in err.splitlines() if "capacity_exceeded" in line]
    assert refused
    assert refused[0]["clients_needed"] == 2
    assert "25000 agents selected" in refused[0]["error"]


async def test_export_backup_and_migrate(tmp_path: Path) -> None:
    """export writes the documented columns with filters; backup copies; migrate reports."""
    async with running(tmp_path, sim_settings(agents=5)) as run:
        agents = list(run.sim.org.agents)
        for agent in agents[:2]:
            run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
        await run.converged()
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "monitor.db"}"\n')
    creds = {"GENESYS_CLIENT_ID": "x", "GENESYS_CLIENT_SECRET": "y"}

    code, out, err = await monitor(
        "export", "--config", str(config), "--agent", agents[0], env=creds
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == [
        "agent_id",
        "kind",
        "from",
        "to",
        "presence_definition_id",
        "event_time",
        "seen_time",
        "source",
    ]
    assert {r["agent_id"] for r in rows} == {agents[0]}
    assert rows[-1]["to"] == "BREAK"

    code, out, _err = await monitor(
        "export", "--config", str(config), "--format", "jsonl", "--since", "2999-01-01", env=creds
    )
    assert (code, out) == (0, "")

    target = tmp_path / "backup.db"
    code, _out, err = await monitor("backup", "--config", str(config), str(target), env=creds)
    assert code == 0, err
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    code, _out, err = await monitor("backup", "--config", str(config), str(target), env=creds)
    assert code == 1
    assert "exist" in err

    code, out, _err = await monitor("migrate", "--config", str(config), env=creds)
    assert code == 0
    assert f"schema version {SCHEMA_VERSION}" in out


async def test_file_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    """export and backup on a database that does not exist: exit 2, nothing created."""
    config = tmp_path / "config.toml"
    missing = tmp_path / "nothing-here.db"
    config.write_text(f'[storage]\npath = "{missing}"\n')
    for args in (("export",), ("backup", str(tmp_path / "copy.db"))):
        code, _out, err = await monitor(args[0], "--config", str(config), *args[1:])
        assert code == 2
        assert "no database at" in err
    assert not missing.exists()


async def test_demo_runs_and_stops(tmp_path: Path) -> None:
    """`monitor demo` starts both sides, prints the URLs and a summary, and stops on its own."""
    code, out, err = await monitor(
        "demo",
        "--agents",
        "40",
        "--duration",
        "4",
        "--every",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--db",
        str(tmp_path / "demo.db"),
    )
    assert code == 0, err
    assert "monitor metrics: http://127.0.0.1:" in out
    assert "127.0.0.1:0/" not in out
    assert "channels 1/1 up" in out
    assert out.rstrip().endswith("stopped")
