"""A simulator and a daemon running against it in the test's event loop. Holds no tests.

The daemon shares the simulator's clock, as in `monitor demo`, so both agree on every timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from monitor import config, service
from monitor.config import Settings
from monitor.core.model import Kind
from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings
from tests.support import eventually, scaled

# One stuck-agent rule that fires quickly: an agent on Break for a second.
BREAK_RULE = """
[stuck]
defaults = false
evaluate_every_s = 0.05
[[rules]]
name = "break_test"
presence = ["Break"]
threshold = "1s"
"""


def sim_settings(**overrides: Any) -> SimSettings:
    """A small org, no rate limit unless asked: fast tests."""
    return replace(SimSettings(agents=30, requests_per_minute=0), **overrides)


def daemon_settings(sim: Simulator, db: Path, toml: str = "", **env: str) -> Settings:
    """Settings pointing at `sim`, with short intervals; `toml` is the config file's text (e.g.
    schedules), `env` overrides (MONITOR_X__Y=...)."""
    client = sim.settings.clients[0]
    base = {
        "MONITOR_GENESYS__API_URL": f'"{sim.api_url}"',
        "MONITOR_GENESYS__USERS_PAGE_SIZE": "100",
        "MONITOR_STORAGE__PATH": f'"{db}"',
        "MONITOR_STORAGE__BATCH_DELAY_MS": "5",
        "MONITOR_HTTP__LISTEN": '"127.0.0.1:0"',
        "MONITOR_CHANNELS__BACKOFF_BASE_S": "0.05",
        "MONITOR_CHANNELS__BACKOFF_CAP_S": "0.5",
        "MONITOR_ROSTER__REFRESH_S": "3600",
        "GENESYS_CLIENT_ID": client.client_id,
        "GENESYS_CLIENT_SECRET": client.client_secret,
    }
    path = None
    if toml:
        path = db.parent / "config.toml"
        path.write_text(toml)
    return config.load(path, env={**base, **env})


@dataclass
class Running:
    sim: Simulator
    daemon: service.Daemon
    task: asyncio.Task[None]
    stop: asyncio.Event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.web_port}"

    def state(self, agent_id: str, kind: Kind) -> str | None:
        known = self.daemon.tracker.state(agent_id, kind)
        return None if known is None else known.value

    def truth(self) -> dict[tuple[str, Kind], str]:
        """The simulator's current presence and routing status of every active agent."""
        org = self.sim.org
        result: dict[tuple[str, Kind], str] = {}
        for agent in org.agents.values():
            if agent.state == "active":
                result[(agent.id, Kind.PRESENCE)] = org.presence_of(agent).value
                result[(agent.id, Kind.ROUTING)] = agent.routing_status.value
        return result

    def known(self) -> dict[tuple[str, Kind], str]:
        return {key: state.value for key, state in self.daemon.tracker.states()}

    async def converged(self, within: float = 10.0) -> None:
        """Wait until the daemon's state equals the simulator's truth, and is written."""
        await eventually(lambda: self.known() == self.truth(), within=within, message="converged")
        await eventually(lambda: self.daemon.writer.depth == 0, within=within, message="written")

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.url}/metrics")
        assert response.status_code == 200
        return response.text


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    sim: SimSettings | None = None,
    *,
    simulator: Simulator | None = None,
    behaviour: bool = False,
    wait_ready: bool = True,
    toml: str = "",
    env: Mapping[str, str] | None = None,
    **more_env: str,
) -> AsyncIterator[Running]:
    """A daemon against a simulator (started here unless given); stopped, and checked to stop
    cleanly, on exit. `env` and `more_env` are MONITOR_* overrides."""
    async with contextlib.AsyncExitStack() as stack:
        if simulator is None:
            simulator = await stack.enter_async_context(
                Simulator.start(sim or sim_settings(), behaviour=behaviour)
            )
        settings = daemon_settings(
            simulator, tmp_path / "monitor.db", toml, **{**(env or {}), **more_env}
        )
        async with service.build(settings, clock=simulator.clock, seed=1) as daemon:
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(daemon, stop), name="daemon")
            run = Running(simulator, daemon, task, stop)
            try:
                if wait_ready:
                    await eventually(
                        lambda: daemon.ready or task.done(), within=120, message="daemon ready"
                    )
                    if task.done():
                        task.result()
                yield run
            finally:
                stop.set()
                async with asyncio.timeout(scaled(20)):
                    await task
