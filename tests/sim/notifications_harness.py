"""The notification service under test, running for real on loopback: its REST routes on an
HttpServer, its websocket server, and an httpx client with a live token. Imported by the
notification, streaming and SDK tests; it holds no tests itself."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from monitor.clock import ScaledClock
from monitor.core.model import Presence, RoutingStatus
from monitor.httpserver import HttpServer, Router
from monitor.sim.faults import Faults
from monitor.sim.http import genesys_errors
from monitor.sim.notifications import Notifications
from monitor.sim.org import Org
from monitor.sim.settings import OAuthClient, SimSettings
from monitor.sim.tokens import Tokens
from tests.support import eventually, scaled

CHANNELS = "/api/v2/notifications/channels"
CLIENTS = (OAuthClient("sim-client", "sim-secret"), OAuthClient("other-client", "other-secret"))


@dataclass
class Sim:
    settings: SimSettings
    clock: ScaledClock
    org: Org
    tokens: Tokens
    faults: Faults
    notifications: Notifications
    http: httpx.AsyncClient
    token: str

    def new_token(self, client_id: str = "sim-client") -> str:
        secret = {c.client_id: c.client_secret for c in CLIENTS}[client_id]
        token = self.tokens.issue(client_id, secret)
        assert token is not None
        return token.value

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def create_channel(self, token: str | None = None) -> dict[str, Any]:
        response = await self.http.post(CHANNELS, headers=self.auth(token))
        assert response.status_code == 200, response.text
        channel: dict[str, Any] = response.json()
        return channel

    async def subscribe(
        self,
        channel_id: str,
        topics: list[str],
        *,
        method: str = "PUT",
        ignore_errors: bool | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        params = {} if ignore_errors is None else {"ignoreErrors": str(ignore_errors).lower()}
        return await self.http.request(
            method,
            f"{CHANNELS}/{channel_id}/subscriptions",
            params=params,
            json=[{"id": topic} for topic in topics],
            headers=self.auth(token),
        )

    async def topics(self, channel_id: str) -> list[str]:
        response = await self.http.get(
            f"{CHANNELS}/{channel_id}/subscriptions", headers=self.auth()
        )
        assert response.status_code == 200, response.text
        return [entity["id"] for entity in response.json()["entities"]]

    async def head(self, channel_id: str, token: str | None = None) -> int:
        response = await self.http.head(f"{CHANNELS}/{channel_id}", headers=self.auth(token))
        return response.status_code

    async def connected_channel(self, topics: list[str]) -> tuple[dict[str, Any], ClientConnection]:
        """A new channel subscribed to `topics`, with a socket connected and attached."""
        channel = await self.create_channel()
        if topics:
            response = await self.subscribe(channel["id"], topics)
            assert response.status_code == 200, response.text
        ws = await self.connect(channel)
        return channel, ws

    async def connect(self, channel: dict[str, Any]) -> ClientConnection:
        ws = await connect(channel["connectUri"], compression=None, ping_interval=None)
        # The handshake is done before the server's handler attaches the socket to its channel.
        await self.wait_attached(channel["id"])
        return ws

    async def wait_attached(self, channel_id: str) -> None:
        await eventually(
            lambda: (c := self.notifications.channels.get(channel_id)) is not None and c.connected,
            message=f"socket attached to {channel_id}",
        )

    def agent_ids(self) -> list[str]:
        return list(self.org.agents)

    def put_on_queue(self, agent_id: str) -> None:
        self.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")

    def toggle_routing(self, agent_id: str) -> list[int]:
        agent = self.org.agent(agent_id)
        target = (
            RoutingStatus.INTERACTING
            if agent.routing_status is RoutingStatus.IDLE
            else RoutingStatus.IDLE
        )
        return [c.seq for c in self.org.set_routing(agent_id, target, cause="test")]


@asynccontextmanager
async def running_sim(**overrides: Any) -> AsyncIterator[Sim]:
    """A started notification service with the given settings overrides."""
    options: dict[str, Any] = {"agents": 20, "clients": CLIENTS, **overrides}
    settings = SimSettings(**options)
    clock = ScaledClock(settings.start_ms, settings.time_factor)
    org = Org(settings, clock)
    tokens = Tokens(settings, clock, random.Random(3))
    faults = Faults(rng=random.Random(5))
    notifications = Notifications(settings, org, clock, tokens, faults)
    router = Router()
    notifications.add_routes(router)
    server = HttpServer(router, errors=genesys_errors, name="sim-rest")
    port = await server.start("127.0.0.1", 0)
    await notifications.start("127.0.0.1", 0)
    token = tokens.issue("sim-client", "sim-secret")
    assert token is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield Sim(settings, clock, org, tokens, faults, notifications, http, token.value)
    finally:
        await notifications.close()
        await server.close()


async def recv_json(ws: ClientConnection, within: float = 5.0) -> Any:
    """The next frame, parsed."""
    async with asyncio.timeout(scaled(within)):
        return json.loads(await ws.recv())


async def next_matching(
    ws: ClientConnection, accept: Callable[[Any], bool], within: float = 5.0
) -> Any:
    """The next parsed frame that `accept` takes, skipping the others (heartbeats...)."""
    async with asyncio.timeout(scaled(within)):
        while True:
            frame = json.loads(await ws.recv())
            if accept(frame):
                return frame


def is_event(frame: Any) -> bool:
    return isinstance(frame, dict) and str(frame.get("topicName", "")).startswith("v2.users.")


async def events(ws: ClientConnection, count: int, within: float = 5.0) -> list[Any]:
    """The next `count` user-event frames, skipping heartbeats and pongs."""
    return [await next_matching(ws, is_event, within) for _ in range(count)]
