"""Presence changes through the daemon's action endpoint, against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.core.timefmt import format_iso_ms
from tests.daemon import Running, running
from tests.support import eventually, scaled

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def post(run: Running, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = AUTH if headers is None else headers
    async with httpx.AsyncClient() as http:
        if isinstance(body, bytes):
            return await http.post(f"{run.url}/api/v1/presence", content=body, headers=headers)
        return await http.post(f"{run.url}/api/v1/presence", json=body, headers=headers)


def agents(run: Running) -> list[str]:
    return list(run.sim.org.agents)


async def settle(run: Running, *agent_ids: str) -> None:
    """Wait until the daemon knows these agents' current state."""
    await eventually(
        lambda: all(run.truth()[(a, k)] == run.state(a, k) for a in agent_ids for k in Kind)
    )


@pytest.fixture
def env() -> dict[str, str]:
    return {"MONITOR_API_TOKEN": TOKEN, "MONITOR_ACTIONS__MAX_AGENTS": "5"}


async def test_refused_requests_change_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    """Missing or wrong token, bad JSON, bad body, unknown presence, too big, over the cap: each
    refused with its status and a JSON error, and nothing changes or is audited."""
    async with running(tmp_path, env=env) as run:
        truth_before = len(run.sim.org.truth)
        good = {"to": "Offline", "select": {"agents": agents(run)[:1]}}
        cases = [
            (good, {}, 401),
            (good, {"Authorization": "Bearer nope"}, 403),
            (b"{not json", AUTH, 400),
            ({"to": "Offline"}, AUTH, 400),
            ({"to": "Offline", "select": {}, "surprise": 1}, AUTH, 400),
            ({"to": "Lunchtime", "select": {}}, AUTH, 422),
            ({"to": "Offline", "select": {"presence": ["Sleeping"]}}, AUTH, 422),
            ({"to": "Busy", "select": {}}, AUTH, 422),  # 30 agents > cap of 5
            (b"{" + b" " * 70_000 + b"}", AUTH, 413),
        ]
        for body, headers, status in cases:
            response = await post(run, body, headers)
            assert response.status_code == status, (
                body if isinstance(body, dict) else "...",
                response.text,
            )
            assert response.json().get("error")
        unknown = await post(run, {"to": "Lunchtime", "select": {}})
        assert "Lunch" in unknown.json()["error"]  # the choices are listed
        assert len(run.sim.org.truth) == truth_before
        assert await run.daemon.store.actions() == []


async def test_dry_run_reports_and_changes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    """A dry run lists what would change, changes nothing, and is audited as a dry run."""
    async with running(tmp_path, env=env) as run:
        targets = agents(run)[:3]
        response = await post(run, {"to": "Break", "select": {"agents": targets}, "dry_run": True})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["dry_run"] is True
        assert answer["counts"] == {"would_change": 3}
        assert all(
            run.sim.org.presence_of(run.sim.org.agent(a)) is Presence.OFFLINE for a in targets
        )
        audit = await run.daemon.store.actions()
        assert {(r.agent_id, r.outcome, r.dry_run) for r in audit} == {
            (a, "would_change", True) for a in targets
        }


async def test_changes_are_applied_guarded_and_audited(tmp_path: Path, env: dict[str, str]) -> None:
    """The selected agents change; interacting and already-there agents are skipped unless
    forced; each audit row matches the transition its change caused."""
    async with running(tmp_path, env=env) as run:
        org = run.sim.org
        busy, idle, on_break, offline = agents(run)[:4]
        for agent in (busy, idle):
            org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        org.set_routing(busy, RoutingStatus.INTERACTING, cause="test")
        org.set_system_presence(on_break, Presence.BREAK, cause="test")
        await settle(run, busy, idle, on_break, offline)

        chosen = [busy, idle, on_break, offline]
        response = await post(
            run, {"to": "Break", "select": {"agents": chosen}, "requested_by": "jane"}
        )
        assert response.status_code == 200, response.text
        outcomes = {a["agent_id"]: a["outcome"] for a in response.json()["agents"]}
        assert outcomes == {
            busy: "skipped_interacting",
            idle: "changed",
            on_break: "skipped_already",
            offline: "changed",
        }
        assert org.presence_of(org.agent(busy)) is Presence.ON_QUEUE
        assert org.presence_of(org.agent(idle)) is Presence.BREAK

        forced = await post(run, {"to": "Break", "select": {"agents": [busy]}, "force": True})
        assert forced.json()["counts"] == {"changed": 1}
        assert org.presence_of(org.agent(busy)) is Presence.BREAK

        await run.converged()
        audit = await run.daemon.store.actions()
        changed = [r for r in audit if r.outcome == "changed"]
        assert {r.agent_id for r in changed} == {busy, idle, offline}
        assert all(r.actor.startswith("http:") for r in audit)
        assert any(r.actor.endswith(":jane") for r in audit)
        rows = {
            (row["agent_id"], row["event_time"])
            async for row in run.daemon.store.export(None, None, None)
            if row["kind"] == "presence" and row["to"] == "BREAK"
        }
        for record in changed:
            assert record.event_ms is not None
            assert (record.agent_id, format_iso_ms(record.event_ms)) in rows


async def test_selectors_and_org_labels(tmp_path: Path, env: dict[str, str]) -> None:
    """Selection by current presence and time in status; targets by an org label in any locale."""
    async with running(tmp_path, env={**env, "MONITOR_ACTIONS__MAX_AGENTS": "50"}) as run:
        org = run.sim.org
        early, late = agents(run)[:2]
        org.set_system_presence(early, Presence.AVAILABLE, cause="test")
        await settle(run, early)
        await run.sim.clock.sleep(0.3)
        org.set_system_presence(late, Presence.AVAILABLE, cause="test")
        await settle(run, late)
        response = await post(
            run,
            {
                "to": "Mittagessen",
                "select": {"presence": ["available"], "in_status_for": "0.25s"},
            },
        )
        assert response.status_code == 200, response.text
        assert [a["agent_id"] for a in response.json()["agents"]] == [early]
        lunch = org.definition_of(org.agent(early))
        assert (lunch.system_presence, lunch.labels["en_US"]) == (Presence.MEAL, "Lunch")


async def test_queue_selection_reads_current_members(tmp_path: Path, env: dict[str, str]) -> None:
    """Selecting by queue name changes exactly that queue's members."""
    async with running(tmp_path, env={**env, "MONITOR_ACTIONS__MAX_AGENTS": "50"}) as run:
        queue = next(iter(run.sim.org.queues.values()))
        response = await post(
            run, {"to": "Busy", "select": {"queues": [queue.name]}, "dry_run": True}
        )
        assert response.status_code == 200, response.text
        assert {a["agent_id"] for a in response.json()["agents"]} == set(queue.member_ids)


async def test_cli_presence_set_and_audit(tmp_path: Path, env: dict[str, str]) -> None:
    """`monitor presence set` asks the running daemon; `monitor audit` lists what it did."""
    async with running(tmp_path, env=env) as run:
        target = agents(run)[5]
        config = tmp_path / "config.toml"
        config.write_text(
            f'[http]\nlisten = "127.0.0.1:{run.daemon.web_port}"\n'
            f'[storage]\npath = "{tmp_path / "monitor.db"}"\n'
        )
        base = {**os.environ, "MONITOR_API_TOKEN": TOKEN}

        async def monitor(*args: str) -> tuple[int, str, str]:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor",
                *args,
                "--config",
                str(config),
                env=base,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(child.communicate(), scaled(60))
            assert child.returncode is not None
            return child.returncode, out.decode(), err.decode()

        code, out, err = await monitor("presence", "set", "--to", "Training", "--agent", target)
        assert code == 0, err
        assert "changed 1" in out
        assert run.sim.org.presence_of(run.sim.org.agent(target)) is Presence.TRAINING

        code, _out, err = await monitor("presence", "set", "--to", "Nowhere", "--agent", target)
        assert code == 2
        assert "refused (422)" in err

        code, _out, err = await monitor("presence", "set", "--to", "Offline")
        assert code == 2
        assert "selectors, or --all" in err

        code, out, _err = await monitor("audit", "--format", "jsonl")
        assert code == 0
        (row,) = [json.loads(line) for line in out.splitlines()]
        assert (row["agent_id"], row["to"], row["outcome"]) == (target, "TRAINING", "changed")
        assert row["actor"].startswith("http:")
        assert ":cli:" in row["actor"]


async def test_genesys_unavailable_is_503_and_nothing_changes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """When Genesys cannot be asked (a daily-cap 429 on the definitions read), the endpoint
    answers 503 with a JSON error, and no agent changes."""
    async with running(tmp_path, env=env) as run:
        before = len(run.sim.org.truth)
        run.sim.rate_limit_storm(7200.0, retry_after=3600)
        response = await post(run, {"to": "Break", "select": {"agents": agents(run)[:1]}})
        assert response.status_code == 503
        assert "Genesys" in response.json()["error"]
        assert len(run.sim.org.truth) == before
