"""The running simulator: the org, tokens, faults, the REST API with its request pipeline, the
notification service, the admin API and, optionally, the behaviour model, on loopback ports.

Every request passes one pipeline. `/oauth/token` and `/sim/*` need no token. Everything under
`/api/v2` needs a live bearer token first (a 401 wins over every fault, as a dead token is the
client's problem whatever the server's state), then meets the injected faults (a 429 storm, a
burst of 5xx), then the token's rate budget, and only then its route. Every response carries an
`ININ-Correlation-Id`, as Genesys's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from monitor.clock import ScaledClock
from monitor.core.model import Presence
from monitor.httpserver import HttpError, HttpServer, Request, Response, Router
from monitor.sim.admin import AdminApi
from monitor.sim.behaviour import Behaviour
from monitor.sim.faults import Faults
from monitor.sim.http import genesys_errors, require_token
from monitor.sim.notifications import Notifications
from monitor.sim.org import Org
from monitor.sim.ratelimit import RateLimiter, too_many_requests
from monitor.sim.rest_auth import AuthApi
from monitor.sim.rest_params import RestContext
from monitor.sim.rest_presence import PresenceApi
from monitor.sim.rest_routing import RoutingApi
from monitor.sim.rest_users import UsersApi
from monitor.sim.settings import SimSettings
from monitor.sim.tokens import Token, Tokens

_SERVER_ERROR_MESSAGES = {
    500: "The server encountered an unexpected error.",
    502: "The server received an invalid response from an upstream server.",
    503: "The service is currently unavailable. Please try again later.",
    504: "The server timed out waiting for an upstream server.",
}


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class Simulator:
    """A Genesys Cloud org on loopback. Use `Simulator.start(...)`."""

    def __init__(self, settings: SimSettings, clock: ScaledClock, *, behaviour: bool) -> None:
        self.settings = settings
        self.clock = clock
        self.org = Org(settings, clock)
        self.tokens = Tokens(settings, clock, random.Random(f"tokens-{settings.seed}"))
        self.faults = Faults(random.Random(f"faults-{settings.seed}"))
        self.notifications = Notifications(settings, self.org, clock, self.tokens, self.faults)
        self.limiter = RateLimiter(settings.requests_per_minute, clock)
        self.tokens.on_death(self._on_token_death)
        self.behaviour = Behaviour(self.org, clock, settings) if behaviour else None
        self.api_url = ""
        self.ws_port = 0
        self._token_issued = asyncio.Event()
        self._router = Router()
        ctx = RestContext.create(self.org, settings)
        AuthApi(self.tokens, clock, self._token_issued.set).add_routes(self._router)
        UsersApi(ctx).add_routes(self._router)
        PresenceApi(ctx).add_routes(self._router)
        RoutingApi(ctx).add_routes(self._router)
        self.notifications.add_routes(self._router)
        AdminApi(self).add_routes(self._router)
        self._http = HttpServer(self._pipeline, errors=genesys_errors, name="sim-http")
        # Every request served, by method and path: what the cold-start benchmark counts.
        self.requests: Counter[tuple[str, str]] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        settings: SimSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        clock: ScaledClock | None = None,
        behaviour: bool = False,
    ) -> AsyncIterator[Simulator]:
        """Build the org, start the servers and tasks; stop everything on exit."""
        settings = settings or SimSettings()
        clock = clock or ScaledClock(settings.start_ms, settings.time_factor)
        sim = cls(settings, clock, behaviour=behaviour)
        try:
            await sim._open(host, port, ws_port)
            yield sim
        finally:
            await sim._close()

    async def _open(self, host: str, port: int, ws_port: int) -> None:
        self.ws_port = await self.notifications.start(host, ws_port)
        bound = await self._http.start(host, port)
        self.api_url = f"http://{_url_host(host)}:{bound}"
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sweep_tokens(), name="sim-token-sweeper"))
        if self.behaviour is not None:
            self._tasks.append(loop.create_task(self.behaviour.run(), name="sim-behaviour"))

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        # A task that failed (rather than being cancelled) must not be hidden by shutdown.
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.behaviour is not None:
            self.behaviour.close()
        await self._http.close()
        await self.notifications.close()
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def stop_behaviour(self) -> None:
        """End the agents' working day: the behaviour model makes no more changes."""
        for task in [t for t in self._tasks if t.get_name() == "sim-behaviour"]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tasks.remove(task)

    # --- the request pipeline -------------------------------------------------------------------

    async def _pipeline(self, request: Request) -> Response:
        self.requests[request.method, request.path] += 1
        try:
            response = await self._handle(request)
        except HttpError as error:
            response = genesys_errors(error)
        if not any(name.lower() == "inin-correlation-id" for name, _ in response.headers):
            response.headers.append(("ININ-Correlation-Id", str(uuid.uuid4())))
        return response

    async def _handle(self, request: Request) -> Response:
        if request.path == "/api/v2" or request.path.startswith("/api/v2/"):
            token = require_token(request, self.tokens)
            self._inject_faults()
            self.limiter.check(token.value)
        return await self._router(request)

    def _inject_faults(self) -> None:
        faults = self.faults
        if self.clock.now_ms() < faults.rate_limit_storm_until_ms:
            raise too_many_requests(faults.storm_retry_after_s)
        if faults.server_errors_remaining > 0:
            faults.server_errors_remaining -= 1
            status = faults.server_error_status
            raise HttpError(status, _SERVER_ERROR_MESSAGES.get(status, "Server error."))

    # --- tokens ---------------------------------------------------------------------------------

    def _on_token_death(self, token: Token, reason: str) -> None:
        self.limiter.forget(token.value)

    async def _sweep_tokens(self) -> None:
        # Expired tokens are found when used, but channels must die on time even when the
        # client has gone quiet, so a timer sweeps at the next expiry (or when a token is issued).
        while True:
            self._token_issued.clear()
            self.tokens.sweep()
            next_ms = self.tokens.next_expiry_ms()
            # One millisecond past the expiry, so the integer clock has surely reached it.
            wait = None if next_ms is None else max(0.0, (next_ms - self.clock.now_ms() + 1) / 1000)
            with contextlib.suppress(TimeoutError):
                async with self.clock.timeout(wait):
                    await self._token_issued.wait()

    # --- fault facade ---------------------------------------------------------------------------

    def _record(self, name: str, **args: Any) -> None:
        self.faults.record(self.clock.now_ms(), name, **args)

    def drop_socket(self, channel_id: str) -> bool:
        """Drop one channel's websocket without a close frame; False when none was connected."""
        self._record("drop_socket", channel_id=channel_id)
        return self.notifications.drop_socket(channel_id)

    def drop_all_sockets(self) -> int:
        self._record("drop_all_sockets")
        return self.notifications.drop_all_sockets()

    def stop_heartbeats(self, stopped: bool = True) -> None:
        """Stop (or resume) heartbeats and pongs on every socket."""
        self._record("stop_heartbeats", stopped=stopped)
        self.faults.heartbeats_stopped = stopped

    def delay_frames(self, seconds: float) -> None:
        """Hold every frame this many simulated seconds before sending it (0 ends the fault)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._record("delay_frames", seconds=seconds)
        self.faults.frame_delay_s = seconds

    def duplicate_frames(self, rate: float) -> None:
        self._set_rate("duplicate_frames", "duplicate_rate", rate)

    def reorder_frames(self, rate: float) -> None:
        self._set_rate("reorder_frames", "reorder_rate", rate)

    def malformed_frames(self, rate: float) -> None:
        self._set_rate("malformed_frames", "malformed_rate", rate)

    def _set_rate(self, name: str, attribute: str, rate: float) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("rate is a share between 0 and 1")
        self._record(name, rate=rate)
        setattr(self.faults, attribute, rate)

    def rate_limit_storm(self, seconds: float, retry_after: int = 5) -> None:
        """Answer every authenticated API request with 429 for this many simulated seconds."""
        if seconds < 0 or retry_after < 0:
            raise ValueError("seconds and retry_after must be >= 0")
        self._record("rate_limit_storm", seconds=seconds, retry_after=retry_after)
        self.faults.rate_limit_storm_until_ms = self.clock.now_ms() + int(seconds * 1000)
        self.faults.storm_retry_after_s = retry_after

    def server_errors(self, count: int, status: int = 503) -> None:
        """Answer the next `count` authenticated API requests with this 5xx status."""
        if count < 0 or not 500 <= status <= 599:
            raise ValueError("count must be >= 0 and status a 5xx code")
        self._record("server_errors", count=count, status=status)
        self.faults.server_errors_remaining = count
        self.faults.server_error_status = status

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every live token of one client (of every client when None); returns how many."""
        self._record("revoke_tokens", client_id=client_id)
        return self.tokens.revoke_client(client_id)

    def expire_token(self, value: str) -> bool:
        """Make one token expire now; False when the simulator never issued it."""
        self._record("expire_token", value=value)
        known = self.tokens.get(value) is not None
        self.tokens.expire(value)
        self._token_issued.set()
        return known

    def socket_closing(self, channel_id: str | None = None) -> int:
        """Send `v2.system.socket_closing` (to every channel when None); returns how many."""
        self._record("socket_closing", channel_id=channel_id)
        return self.notifications.send_socket_closing(channel_id)

    def expire_channels(self, channel_id: str | None = None) -> int:
        """Expire one channel (every channel when None) now; returns how many."""
        self._record("expire_channels", channel_id=channel_id)
        return self.notifications.expire_channel(channel_id)

    # --- roster ---------------------------------------------------------------------------------

    def hire(self, n: int) -> list[str]:
        """Add `n` active agents (Offline, off queue); returns their ids."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._record("hire", n=n)
        return [self.org.add_agent().id for _ in range(n)]

    def deactivate(self, agent_id: str) -> None:
        """Deactivate an agent; a deactivated user is logged out, so goes Offline first."""
        agent = self.org.agent(agent_id)
        self._record("deactivate", agent_id=agent_id)
        offline = self.org.system_definition(Presence.OFFLINE).id
        if agent.presence_definition_id != offline:
            self.org.set_presence(agent_id, offline, cause="admin")
        self.org.set_state(agent_id, "inactive")
