"""The composed simulator: its attributes, the request pipeline, the fault facade, the admin API
and the `monitor sim` command, over real sockets."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from monitor.clock import ScaledClock
from monitor.core.model import Presence
from monitor.sim.behaviour import CAUSE as BEHAVIOUR
from monitor.sim.server import Simulator
from tests.sim.rest_harness import Api, running, settings
from tests.support import eventually, scaled

CHANNELS = "/api/v2/notifications/channels"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(settings(agents=20)) as api:
        yield api


async def test_start_builds_everything() -> None:
    """start() yields a running simulator whose clock follows the settings and whose URLs work."""
    sim_settings = settings(agents=7, time_factor=60.0, start_ms=1_700_000_000_000)
    async with Simulator.start(sim_settings) as sim:
        assert sim.clock.factor == 60.0
        assert sim.clock.now_ms() >= 1_700_000_000_000
        assert len(sim.org.agents) == 7
        assert sim.behaviour is None
        assert sim.api_url.startswith("http://127.0.0.1:")
        assert sim.ws_port > 0
        async with httpx.AsyncClient(base_url=sim.api_url) as http:
            r = await http.get("/sim/status")
        assert r.status_code == 200
        assert r.json()["ws_port"] == sim.ws_port


async def test_given_clock_is_used() -> None:
    """A clock passed in is the simulator's clock (shared with a daemon in demos and tests)."""
    clock = ScaledClock(start_ms=1_600_000_000_000, factor=5.0)
    async with Simulator.start(settings(agents=1), clock=clock) as sim:
        assert sim.clock is clock
        assert sim.org.agents[next(iter(sim.org.agents))].presence_modified_ms < 1_700_000_000_000


async def test_behaviour_runs_agents() -> None:
    """With behaviour on, agents start working on their own, and the simulator stops cleanly."""
    fast = settings(agents=30, time_factor=3600.0, start_ms=1_700_042_400_000)
    async with Simulator.start(fast, behaviour=True) as sim:
        assert sim.behaviour is not None
        await eventually(lambda: len(sim.org.truth) > 0, within=10, message="agents working")
        assert {c.cause for c in sim.org.truth} == {BEHAVIOUR}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/sim/status", 200),
        ("GET", "/nowhere", 404),
        ("DELETE", "/sim/status", 405),
        ("POST", "/oauth/token", 400),
        ("GET", "/api/v2/users", 200),
        ("GET", "/api/v2/nowhere", 404),
    ],
)
async def test_every_response_has_a_correlation_id(
    api: Api, method: str, path: str, status: int
) -> None:
    """Every answer, success or error, carries ININ-Correlation-Id; errors have Genesys bodies."""
    r = await api.http.request(method, path, headers=api.auth())
    assert r.status_code == status
    assert len(r.headers["ININ-Correlation-Id"]) == 36
    if status >= 400 and path != "/oauth/token":
        assert r.json()["status"] == status


async def test_token_checked_before_faults(api: Api) -> None:
    """A 5xx burst is spent only on authenticated requests; a bad token still gets 401."""
    api.sim.server_errors(1)
    assert (await api.get("/api/v2/users", token="bogus")).status_code == 401
    assert (await api.get("/api/v2/users")).status_code == 503
    assert (await api.get("/api/v2/users")).status_code == 200


async def test_notification_routes_are_served(api: Api) -> None:
    """The notification service's routes are on the REST port, and channel faults reach it."""
    r = await api.http.post(CHANNELS, headers=api.auth())
    assert r.status_code == 200
    channel = r.json()
    assert channel["connectUri"].endswith(f":{api.sim.ws_port}/channels/{channel['id']}")
    assert api.sim.notifications.channel_ids() == [channel["id"]]
    head = await api.http.head(f"{CHANNELS}/{channel['id']}", headers=api.auth())
    assert head.status_code == 200
    expired = await api.http.post("/sim/faults/expire_channels", json={})
    assert expired.json() == {"fault": "expire_channels", "result": 1}
    head = await api.http.head(f"{CHANNELS}/{channel['id']}", headers=api.auth())
    assert head.status_code == 404


async def test_revoked_token_kills_its_channels(api: Api) -> None:
    """Revoking a client's tokens removes the channels those tokens made."""
    r = await api.http.post(CHANNELS, headers=api.auth())
    assert r.status_code == 200
    result = await api.http.post("/sim/faults/revoke_tokens", json={"client_id": "sim-client"})
    assert result.json()["result"] == 1
    assert api.sim.notifications.channel_ids() == []


# --- the admin API --------------------------------------------------------------------------------


async def test_fault_facade_records_every_fault(api: Api) -> None:
    """Each fault, by method or by admin call, is recorded with its arguments and simulated time."""
    sim = api.sim
    sim.stop_heartbeats()
    sim.delay_frames(0.5)
    sim.duplicate_frames(0.1)
    sim.reorder_frames(0.2)
    sim.malformed_frames(0.3)
    assert sim.drop_socket("nope") is False
    assert sim.drop_all_sockets() == 0
    assert sim.socket_closing() == 0
    r = await api.http.post("/sim/faults/rate_limit_storm", json={"seconds": 0, "retry_after": 2})
    assert r.status_code == 200
    faults = sim.faults
    assert faults.heartbeats_stopped is True
    assert (faults.frame_delay_s, faults.duplicate_rate) == (0.5, 0.1)
    assert (faults.reorder_rate, faults.malformed_rate) == (0.2, 0.3)
    log = (await api.http.get("/sim/faults")).json()["faults"]
    assert [f["name"] for f in log] == [
        "stop_heartbeats",
        "delay_frames",
        "duplicate_frames",
        "reorder_frames",
        "malformed_frames",
        "drop_socket",
        "drop_all_sockets",
        "socket_closing",
        "rate_limit_storm",
    ]
    assert log[1]["args"] == {"seconds": 0.5}
    assert all(abs(f["at_ms"] - sim.clock.now_ms()) < 60_000 for f in log)


@pytest.mark.parametrize(
    ("name", "args", "status"),
    [
        ("flood", {}, 404),
        ("server_errors", {}, 400),
        ("server_errors", {"count": "3"}, 400),
        ("server_errors", {"count": 3, "colour": "red"}, 400),
        ("server_errors", {"count": 3, "status": 404}, 400),
        ("duplicate_frames", {"rate": 2}, 400),
        ("stop_heartbeats", {"stopped": 1}, 400),
        ("drop_socket", {"channel_id": None}, 400),
    ],
)
async def test_admin_fault_bad_requests(
    api: Api, name: str, args: dict[str, Any], status: int
) -> None:
    """Unknown faults are a 404; missing, unknown, mistyped or refused arguments a 400."""
    r = await api.http.post(f"/sim/faults/{name}", json=args)
    assert r.status_code == status
    assert r.json()["message"]
    assert api.sim.faults.log == []


async def test_admin_fault_bad_json(api: Api) -> None:
    """A fault request whose body is not a JSON object is a 400."""
    r = await api.http.post("/sim/faults/drop_all_sockets", content=b"[1, 2]")
    assert r.status_code == 400


async def test_admin_presence_and_truth(api: Api) -> None:
    """Admin presence changes couple routing, are recorded with cause "admin", and are readable
    from /sim/truth in order, from any sequence number."""
    agent_id = api.active_ids()[0]
    r = await api.http.post(f"/sim/agents/{agent_id}/presence", json={"presence": "on_queue"})
    assert r.status_code == 200
    body = r.json()
    assert body["agent"]["presence"] == "ON_QUEUE"
    assert body["agent"]["routing_status"] == "IDLE"
    assert [(c["kind"], c["value"], c["cause"]) for c in body["changes"]] == [
        ("presence", "ON_QUEUE", "admin"),
        ("routing", "IDLE", "admin"),
    ]
    custom = next(d for d in api.sim.org.definitions.values() if not d.primary)
    r = await api.http.post(f"/sim/agents/{agent_id}/presence", json={"definitionId": custom.id})
    assert r.json()["agent"]["definition_id"] == custom.id
    truth = (await api.http.get("/sim/truth")).json()
    assert [c["seq"] for c in truth["changes"]] == list(range(truth["total"]))
    assert truth["next_seq"] == truth["total"] == 4
    tail = (await api.http.get("/sim/truth", params={"since_seq": 2})).json()
    assert [c["seq"] for c in tail["changes"]] == [2, 3]
    assert tail["changes"][0]["event_time"].endswith("Z")


async def test_admin_routing_needs_force_for_inconsistent_states(api: Api) -> None:
    """Admin routing changes that Genesys would not allow need force; with it they are applied."""
    agent_id = api.active_ids()[0]
    refused = await api.http.post(f"/sim/agents/{agent_id}/routing", json={"status": "IDLE"})
    assert refused.status_code == 400
    assert "force" in refused.json()["message"]
    forced = await api.http.post(
        f"/sim/agents/{agent_id}/routing", json={"status": "INTERACTING", "force": True}
    )
    assert forced.status_code == 200
    assert forced.json()["agent"]["routing_status"] == "INTERACTING"
    assert api.sim.org.truth[-1].cause == "admin"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/sim/agents/nope/presence", {"presence": "BREAK"}, 404),
        ("/sim/agents/{id}/presence", {"presence": "NAPPING"}, 400),
        ("/sim/agents/{id}/presence", {"definitionId": "nope"}, 400),
        ("/sim/agents/{id}/presence", {}, 400),
        ("/sim/agents/{id}/routing", {"status": "ASLEEP"}, 400),
        ("/sim/agents/{id}/routing", {"status": "IDLE", "force": "yes"}, 400),
        ("/sim/roster/hire", {"count": -1}, 400),
        ("/sim/roster/deactivate", {"id": "nope"}, 404),
    ],
)
async def test_admin_bad_requests(api: Api, path: str, body: dict[str, Any], status: int) -> None:
    """Bad admin requests are refused with a clear status and change nothing."""
    r = await api.http.post(path.replace("{id}", api.active_ids()[0]), json=body)
    assert r.status_code == status
    assert api.sim.org.truth == []
    assert len(api.sim.org.agents) == 20


async def test_admin_agent_state(api: Api) -> None:
    """GET /sim/agents/{id} shows the agent's current state; an unknown id is a 404."""
    agent_id = api.active_ids()[0]
    api.sim.org.set_system_presence(agent_id, Presence.BREAK, cause="test")
    state = (await api.http.get(f"/sim/agents/{agent_id}")).json()
    assert (state["presence"], state["routing_status"], state["state"]) == (
        "BREAK",
        "OFF_QUEUE",
        "active",
    )
    assert (await api.http.get("/sim/agents/nope")).status_code == 404


async def test_admin_roster(api: Api) -> None:
    """Hiring adds active agents the REST API lists; deactivating logs the agent out first."""
    hired = (await api.http.post("/sim/roster/hire", json={"count": 3})).json()["hired"]
    assert len(hired) == 3
    listing = await api.get_json("/api/v2/users", pageSize=100)
    assert set(hired) <= {u["id"] for u in listing["entities"]}
    agent_id = hired[0]
    api.sim.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    r = await api.http.post("/sim/roster/deactivate", json={"id": agent_id})
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["presence"], r.json()["routing_status"]) == (
        "inactive",
        "OFFLINE",
        "OFF_QUEUE",
    )
    assert [f.name for f in api.sim.faults.log] == ["hire", "deactivate"]


async def test_admin_status(api: Api) -> None:
    """/sim/status counts agents, presences and routing statuses, and shows clock and channels."""
    api.sim.deactivate(api.active_ids()[0])
    api.sim.org.set_system_presence(api.active_ids()[0], Presence.ON_QUEUE, cause="test")
    status = (await api.http.get("/sim/status")).json()
    assert status["agents"] == {"active": 19, "inactive": 1, "total": 20}
    assert status["presence"] == {"OFFLINE": 18, "ON_QUEUE": 1}
    assert status["routing"] == {"OFF_QUEUE": 18, "IDLE": 1}
    assert status["clock"]["time_factor"] == 1.0
    assert status["channels"] == []
    assert status["live_tokens"] == 1


# --- the command ----------------------------------------------------------------------------------


async def test_sim_command_serves_until_sigterm() -> None:
    """`monitor sim` prints the URL and credentials, serves the API, and exits 0 on SIGTERM."""
    script = (
        "import argparse, sys\n"
        "from monitor.sim import cli\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.add_arguments(parser)\n"
        "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "--agents",
        "12",
        "--seed",
        "3",
        "--no-behaviour",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines: dict[str, str] = {}
        async with asyncio.timeout(scaled(20)):
            while "admin api" not in lines:
                line = (await process.stdout.readline()).decode()
                assert line, "the command ended before it was ready"
                key, _, value = line.partition(":")
                lines[key.strip()] = value.strip()
        api_url = lines["api url"].split()[0]
        assert lines["client id"] == "sim-client"
        assert lines["client secret"] == "sim-secret"
        assert int(lines["websocket port"]) > 0
        async with httpx.AsyncClient(base_url=api_url) as http:
            r = await http.post(
                "/oauth/token",
                auth=("sim-client", "sim-secret"),
                data={"grant_type": "client_credentials"},
            )
            token = r.json()["access_token"]
            users = await http.get("/api/v2/users", headers={"Authorization": f"Bearer {token}"})
        assert users.json()["total"] == 12
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(scaled(20)):
            code = await process.wait()
    assert code == 0


async def test_sim_command_refuses_bad_arguments() -> None:
    """Impossible settings exit with code 2 and a message, without starting."""
    script = (
        "import argparse, sys\n"
        "from monitor.sim import cli\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.add_arguments(parser)\n"
        "sys.exit(cli.run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "--time-factor",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(scaled(20)):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"time_factor must be positive" in stderr
