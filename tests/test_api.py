"""The read-only JSON API, over real HTTP, against a daemon watching the simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.core.model import Kind, Presence, RoutingStatus
from tests.daemon import BREAK_RULE, Running, running
from tests.support import eventually

TOKEN = "read-only-token"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **env: str) -> AsyncIterator[Running]:
    """A daemon (its listener serves the API), every agent's state known."""
    async with running(tmp_path, env={"MONITOR_METRICS__BY": '["queue"]', **env}) as run:
        await run.converged()
        yield run


async def get(
    run: Running,
    path: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    **named: str,
) -> httpx.Response:
    params = {**(params or {}), **named}
    async with httpx.AsyncClient() as http:
        return await http.get(f"{run.url}{path}", params=params, headers=headers)


async def test_agents_lists_current_state_and_filters(tmp_path: Path) -> None:
    """Every watched agent with state and since; filters by division, queue and status."""
    async with serving(tmp_path) as run:
        org = run.sim.org
        agent = next(iter(org.agents))
        org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        org.set_routing(agent, RoutingStatus.INTERACTING, cause="test")
        await run.converged()
        response = await get(run, "/api/v1/agents")
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == len(run.daemon.roster) == 30
        shown = {a["id"]: a for a in body["agents"]}
        assert shown[agent]["presence"]["status"] == "ON_QUEUE"
        assert shown[agent]["routing_status"]["status"] == "INTERACTING"
        assert shown[agent]["routing_status"]["seconds"] >= 0
        assert shown[agent]["stuck"] == []
        routing = await get(run, "/api/v1/agents", routing_status="interacting")
        assert [a["id"] for a in routing.json()["agents"]] == [agent]
        mine = next(a for a in run.daemon.roster if a.id == agent)
        division = await get(run, "/api/v1/agents", division=mine.division_name.upper())
        assert agent in {a["id"] for a in division.json()["agents"]}
        assert all(a["division"]["name"] == mine.division_name for a in division.json()["agents"])
        queue = mine.queue_ids[0]
        in_queue = await get(run, "/api/v1/agents", queue=queue)
        expected = {a.id for a in run.daemon.roster if queue in a.queue_ids}
        assert {a["id"] for a in in_queue.json()["agents"]} == expected
        on_queue = await get(run, "/api/v1/agents", presence="On Queue,Offline")
        assert {a["presence"]["status"] for a in on_queue.json()["agents"]} <= {
            "ON_QUEUE",
            "OFFLINE",
        }


async def test_one_agent_and_unknown_agents(tmp_path: Path) -> None:
    """One agent by id; an unknown id is a JSON 404; a bad status name a JSON 400."""
    async with serving(tmp_path) as run:
        agent = next(iter(run.sim.org.agents))
        one = await get(run, f"/api/v1/agents/{agent}")
        assert one.status_code == 200
        assert one.json()["id"] == agent
        missing = await get(run, "/api/v1/agents/no-such-agent")
        assert missing.status_code == 404
        assert "no-such-agent" in missing.json()["error"]
        timeline = await get(run, "/api/v1/agents/no-such-agent/timeline")
        assert timeline.status_code == 404
        assert timeline.json()["error"]
        bad = await get(run, "/api/v1/agents", presence="!!")
        assert bad.status_code == 400
        assert bad.json()["error"]


async def test_timeline_of_an_agent(tmp_path: Path) -> None:
    """The timeline shows today's changes as intervals, in the asked time zone."""
    async with serving(tmp_path) as run:
        agent = next(iter(run.sim.org.agents))
        run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
        await run.converged()
        now = run.daemon.clock.now_ms()
        day = datetime.fromtimestamp(now / 1000, UTC).date().isoformat()
        response = await get(run, f"/api/v1/agents/{agent}/timeline", tz="UTC")
        assert response.status_code == 200
        body = response.json()
        assert body["agent"]["id"] == agent
        assert body["timezone"] == "UTC"
        presence = [i for i in body["intervals"] if i["kind"] == "presence"]
        assert presence[-1]["status"] == "BREAK"
        assert presence[-1]["source"] == "live"
        whole = await get(
            run, f"/api/v1/agents/{agent}/timeline", params={"from": day, "tz": "UTC"}
        )
        assert whole.status_code == 200
        following = datetime.fromisoformat(day) + timedelta(days=1)
        assert whole.json()["from"] == f"{day}T00:00:00.000Z"
        assert whole.json()["to"] == f"{following.date().isoformat()}T00:00:00.000Z"
        for bad in ({"from": "yesterday"}, {"from": day, "to": "2000-01-01"}, {"tz": "Nowhere/X"}):
            refused = await get(run, f"/api/v1/agents/{agent}/timeline", params=bad)
            assert refused.status_code == 400, bad
            assert refused.json()["error"]


async def test_status_time_report(tmp_path: Path) -> None:
    """The status-time report as JSON; bad dates and groupings are JSON 400s."""
    async with serving(tmp_path) as run:
        now = run.daemon.clock.now_ms()
        day = datetime.fromtimestamp(now / 1000, UTC).date().isoformat()
        response = await get(
            run, "/api/v1/reports/status-time", params={"from": day, "tz": "UTC", "by": "division"}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["by"] == ["division"]
        divisions = {a.division_name for a in run.daemon.roster}
        assert {row["division"] for row in body["rows"]} == divisions
        assert all(row["seconds"] >= 0 for row in body["rows"])
        kinds = {row["kind"] for row in body["rows"]}
        assert kinds == {Kind.PRESENCE.value, Kind.ROUTING.value}
        for bad in (
            {},
            {"from": "2026-13-01"},
            {"from": day, "to": "2020-01-01"},
            {"from": day, "by": "team"},
            {"from": "2020-01-01", "to": "2026-01-01"},
        ):
            refused = await get(run, "/api/v1/reports/status-time", params=bad)
            assert refused.status_code == 400, bad
            assert refused.json()["error"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
async def test_token_is_required_when_configured(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    """With a token configured: 401 without a bearer token, 403 with a wrong one."""
    async with serving(tmp_path, MONITOR_API_TOKEN=TOKEN) as run:
        for path in ("/api/v1/agents", f"/api/v1/agents/{next(iter(run.sim.org.agents))}"):
            response = await get(run, path, headers)
            assert response.status_code == status
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
            if status != 200:
                assert response.json()["error"]


async def test_daemon_view_reports_rules_firing(tmp_path: Path) -> None:
    """The stuck rules firing for an agent appear in its state."""
    async with running(tmp_path, toml=BREAK_RULE) as run:
        agent = next(iter(run.sim.org.agents))
        run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")

        async def firing() -> list[str]:
            shown: list[str] = (await get(run, f"/api/v1/agents/{agent}")).json()["stuck"]
            return shown

        assert await eventually(firing, within=10, interval=0.05) == ["break_test"]
