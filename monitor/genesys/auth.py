"""The OAuth client-credentials token of one OAuth client: fetched on demand, refreshed before it
expires, one request at a time however many callers ask at once (single flight)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from monitor.clock import Clock
from monitor.core.backoff import Backoff
from monitor.errors import AuthError, TransportError
from monitor.genesys.api import Transport, error_from

log = structlog.get_logger(__name__)

# A token is not handed out in its last minute (or last tenth, for short-lived tokens): a
# request sent with it could arrive after it expired.
_SAFETY_MS = 60_000


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    issued_ms: int
    expires_ms: int


class TokenSource:
    """Client-credentials tokens of one OAuth client."""

    def __init__(
        self,
        transport: Transport,
        login_url: str,
        client_id: str,
        client_secret: str,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        max_attempts: int = 6,
    ) -> None:
        self._transport = transport
        self._url = login_url.rstrip("/") + "/oauth/token"
        self.client_id = client_id
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {basic}"}
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_attempts = max_attempts
        self._current: AccessToken | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[AccessToken], None]] = []

    @property
    def current(self) -> AccessToken | None:
        return self._current

    def on_change(self, listener: Callable[[AccessToken], None]) -> None:
        """Call `listener` with every new token (channels die with the token that made them)."""
        self._listeners.append(listener)

    async def bearer(self) -> str:
        return (await self.get()).value

    async def get(self) -> AccessToken:
        """A token valid for at least another minute, fetching one if needed."""
        token = self._current
        if token is not None and self._fresh(token):
            return token
        return await self.refresh(stale=token)

    async def refresh(self, stale: AccessToken | None = None) -> AccessToken:
        """Fetch a new token, unless another caller already replaced `stale` with a fresh one."""
        async with self._lock:
            # Everyone who waited on the lock behind the fetch gets its result, not a new fetch.
            current = self._current
            if current is not None and current is not stale and self._fresh(current):
                return current
            token = await self._fetch()
            self._current = token
        for listener in list(self._listeners):
            listener(token)
        return token

    def invalidate(self, value: str) -> None:
        """Forget the token with this value (a 401 said it is no longer good)."""
        if self._current is not None and self._current.value == value:
            self._current = None

    def _fresh(self, token: AccessToken) -> bool:
        margin = min(_SAFETY_MS, (token.expires_ms - token.issued_ms) // 10)
        return self._clock.now_ms() < token.expires_ms - margin

    async def _fetch(self) -> AccessToken:
        backoff = Backoff(base=1.0, cap=30.0, rng=self._rng)
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._transport.send(
                    "POST",
                    self._url,
                    headers=self._headers,
                    form={"grant_type": "client_credentials"},
                )
            except TransportError as exc:
                if attempt == self._max_attempts:
                    raise
                log.warning("token_request_failed", error=str(exc), attempt=attempt)
                await self._clock.sleep(backoff.next())
                continue
            if response.status in (400, 401, 403):
                error = error_from(
                    response.status, response.body, response.headers, "POST", "/oauth/token"
                )
                raise AuthError(
                    f"OAuth client {self.client_id!r} was refused a token: {error.message}"
                )
            if response.status >= 400:
                if attempt == self._max_attempts:
                    raise error_from(
                        response.status, response.body, response.headers, "POST", "/oauth/token"
                    )
                log.warning("token_request_failed", status=response.status, attempt=attempt)
                await self._clock.sleep(backoff.next())
                continue
            return self._parse(response.body)
        raise AssertionError("unreachable")

    def _parse(self, body: bytes) -> AccessToken:
        try:
            data = json.loads(body)
            value = data["access_token"]
            lifetime_s = int(data["expires_in"])
            token_type = str(data.get("token_type", "bearer"))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise AuthError("the token endpoint answered without a usable access token") from None
        if not isinstance(value, str) or not value or token_type.lower() != "bearer":
            raise AuthError("the token endpoint answered without a usable bearer token")
        now = self._clock.now_ms()
        return AccessToken(value, now, now + lifetime_s * 1000)
