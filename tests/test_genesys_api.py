"""The REST client and the token source against the simulator over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from monitor.clock import SystemClock
from monitor.errors import ApiError, AuthError, BadResponse, NotFound, TransportError
from monitor.genesys.api import GenesysApi, Transport
from monitor.genesys.auth import TokenSource
from monitor.httpserver import HttpServer, Request, Response
from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings


@contextlib.asynccontextmanager
async def client(
    settings: SimSettings | None = None, *, secret: str = "sim-secret", **api: Any
) -> AsyncIterator[tuple[Simulator, GenesysApi, TokenSource]]:
    async with Simulator.start(settings or SimSettings(agents=20, requests_per_minute=0)) as sim:
        transport = Transport(5.0)
        try:
            tokens = TokenSource(transport, sim.api_url, "sim-client", secret, sim.clock)
            yield sim, GenesysApi(transport, sim.api_url, tokens, sim.clock, **api), tokens
        finally:
            await transport.aclose()


async def test_refused_credentials_are_an_auth_error() -> None:
    """A wrong secret gives AuthError, which names the client and is not retried."""
    async with client(secret="wrong") as (_sim, _api, tokens):
        with pytest.raises(AuthError, match="sim-client"):
            await tokens.get()


async def test_token_is_fetched_once_for_many_callers() -> None:
    """Concurrent callers share one token request (single flight)."""
    async with client() as (sim, _api, tokens):
        values = await asyncio.gather(*(tokens.bearer() for _ in range(20)))
        assert len(set(values)) == 1
        assert len(sim.tokens.live()) == 1


async def test_revoked_token_is_replaced_once() -> None:
    """A 401 on a revoked token leads to one new token and the call succeeds."""
    async with client() as (sim, api, tokens):
        first = await tokens.bearer()
        sim.revoke_tokens()
        page = await api.users_page(1, 10)
        assert len(page.users) == 10
        assert await tokens.bearer() != first


@pytest.mark.parametrize("agents", [8, 15, 45])
async def test_all_users_past_the_paging_cap(agents: int) -> None:
    """Within the result cap the listing is paged; up to twice the cap it is read from both
    ends; beyond, division by division through search. Every active user comes back once."""
    settings = SimSettings(
        agents=agents,
        divisions=3,
        requests_per_minute=0,
        users_result_cap=10,
        search_result_cap=10,
        search_max_page_size=5,
    )
    async with client(settings, users_result_cap=10, search_page_size=5) as (sim, api, _t):
        users = await api.all_users(5)
        expected = sorted(a.id for a in sim.org.agents.values() if a.state == "active")
        assert [u.agent.id for u in users] == expected


async def test_users_read_twice_share_their_strings() -> None:
    """Two reads of the users give the same id, division and state objects, not copies: the
    roster, the tracker and the metrics keep them for as long as the agents are watched."""
    async with client(SimSettings(agents=6, divisions=2, requests_per_minute=0)) as (_s, api, _t):
        first, second = await api.all_users(5), await api.all_users(5)
        pairs = list(zip((u.agent for u in first), (u.agent for u in second), strict=True))
        assert all(a.id is b.id and a.division_id is b.division_id for a, b in pairs)
        assert all(a.state is b.state for a, b in pairs)
        assert len({id(a.division_name) for a, _ in pairs}) == 2


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    """A 429 pauses the token for Retry-After, then the request goes through."""
    async with client(replace(SimSettings(agents=5), requests_per_minute=0, time_factor=30)) as (
        sim,
        api,
        _tokens,
    ):
        await api.users_page(1, 5)
        sim.rate_limit_storm(4.0, retry_after=3)
        started = sim.clock.monotonic()
        page = await api.users_page(1, 5)
        assert len(page.users) == 5
        assert sim.clock.monotonic() - started >= 3


async def test_5xx_is_retried_and_4xx_is_not() -> None:
    """Transient 503s are retried; a 400 or 404 is raised at once."""
    async with client(replace(SimSettings(agents=5), requests_per_minute=0, time_factor=30)) as (
        sim,
        api,
        _tokens,
    ):
        sim.server_errors(2)
        assert len((await api.users_page(1, 5)).users) == 5
        assert not await api.channel_exists("streaming-0-nosuchchannel0000000000000000")
        with pytest.raises(ApiError) as caught:
            await api.users_page(1, 501)
        assert caught.value.status == 400
        assert "pageSize" in caught.value.message
        with pytest.raises(NotFound):
            await api.call("GET", "/api/v2/nothing/here", route="test")


async def test_a_daily_cap_retry_after_is_not_waited_out() -> None:
    """A Retry-After longer than the configured maximum is raised as an error, not slept."""
    async with client(max_retry_after_s=2) as (sim, api, _tokens):
        await api.users_page(1, 5)
        sim.rate_limit_storm(3600.0, retry_after=3600)
        with pytest.raises(ApiError) as caught:
            await api.users_page(1, 5)
        assert caught.value.status == 429


async def test_unreachable_server_is_a_transport_error() -> None:
    """Nothing listening: TransportError after the retries run out."""
    transport = Transport(1.0)
    try:
        async with Simulator.start(SimSettings(agents=1)) as sim:
            clock = sim.clock
        tokens = TokenSource(transport, "http://127.0.0.1:9", "x", "y", clock, max_attempts=1)
        with pytest.raises(TransportError):
            await tokens.get()
    finally:
        await transport.aclose()


@contextlib.asynccontextmanager
async def bad_genesys(body: bytes) -> AsyncIterator[GenesysApi]:
    """A server that hands out tokens but answers every API call with `body`."""

    async def handle(request: Request) -> Response:
        if request.path == "/oauth/token":
            return Response.json({"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        return Response(200, body, [("Content-Type", "application/json")])

    server = HttpServer(handle)
    port = await server.start()
    transport = Transport(5.0)
    try:
        url = f"http://127.0.0.1:{port}"
        clock = SystemClock()
        yield GenesysApi(transport, url, TokenSource(transport, url, "a", "b", clock), clock)
    finally:
        await transport.aclose()
        await server.close()


@pytest.mark.parametrize(
    "body",
    [
        b"<html>maintenance</html>",
        b'{"entities": "not a list"}',
        b'{"entities": [{"id": "not-a-uuid"}]}',
        b'{"entities": [{"id": "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f", "presence": 7}]}',
    ],
)
async def test_malformed_answer_is_a_bad_response(body: bytes) -> None:
    """A 2xx whose body is not JSON or not the documented model raises BadResponse."""
    async with bad_genesys(body) as api:
        with pytest.raises(BadResponse):
            await api.users_page(1, 10, expand=["presence"])
