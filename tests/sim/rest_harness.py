"""A whole simulator running on loopback with an httpx client that holds a live token. Imported by
the REST, server and SDK tests; it holds no tests itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from monitor.clock import ScaledClock
from monitor.sim.server import Simulator
from monitor.sim.settings import OAuthClient, SimSettings

CLIENTS = (OAuthClient("sim-client", "sim-secret"), OAuthClient("other-client", "other-secret"))
SECRETS = {c.client_id: c.client_secret for c in CLIENTS}


def settings(**overrides: Any) -> SimSettings:
    """Small, fast test settings: 40 agents, two OAuth clients, no rate limit unless asked."""
    base = SimSettings(agents=40, clients=CLIENTS, requests_per_minute=0)
    return replace(base, **overrides)


@dataclass
class Api:
    sim: Simulator
    http: httpx.AsyncClient
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def new_token(self, client_id: str = "sim-client") -> str:
        response = await self.http.post(
            "/oauth/token",
            auth=(client_id, SECRETS[client_id]),
            data={"grant_type": "client_credentials"},
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        # httpx replaces a URL's own query with `params` when given, so a listing's nextUri is
        # passed on untouched.
        return await self.http.get(path, params=params or None, headers=self.auth(token))

    async def get_json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    async def send(self, method: str, path: str, body: Any, **params: Any) -> httpx.Response:
        return await self.http.request(method, path, json=body, params=params, headers=self.auth())

    def active_ids(self) -> list[str]:
        """Ids of the active agents, in the name order listings use."""
        agents = [a for a in self.sim.org.agents.values() if a.state == "active"]
        return [a.id for a in sorted(agents, key=lambda a: (a.name.lower(), a.id))]


@asynccontextmanager
async def running(
    sim_settings: SimSettings | None = None, *, clock: ScaledClock | None = None
) -> AsyncIterator[Api]:
    """A started simulator and a client with a token of `sim-client`."""
    async with (
        Simulator.start(sim_settings or settings(), clock=clock) as sim,
        httpx.AsyncClient(base_url=sim.api_url) as http,
    ):
        api = Api(sim, http, "")
        api.token = await api.new_token()
        yield api
