"""REST calls to Genesys Cloud over one httpx.AsyncClient.

This is the only module that imports httpx; its exceptions become TransportError here, and HTTP
error statuses become ApiError subclasses. Every request of one OAuth client goes through
`GenesysApi.call`, which spends from the client's request budget, honours 429 Retry-After for the
whole token (as Genesys asks), retries 5xx with the official SDK's policy and a 401 once with a
fresh token.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import structlog

from monitor.clock import Clock
from monitor.core.backoff import retry_delay
from monitor.core.budget import RateBudget
from monitor.core.model import PresenceDefinitionInfo, Update
from monitor.errors import (
    ApiError,
    BadResponse,
    DecodeError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
)
from monitor.genesys import payloads
from monitor.genesys.payloads import (
    ChannelInfo,
    SubscriptionResult,
    UserRecord,
    UsersPage,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
Purpose = Literal["monitor", "action"]
Params = Mapping[str, str | int | Sequence[str]]

# Statuses the official SDK retries; a plain 500 is a bug on the server's side, not transient.
_RETRIED = frozenset({502, 503, 504})
# At most this many ids in one GET /users?id=... (keeps the URL well under common limits).
USERS_BY_ID_BATCH = 100
BULK_PRESENCE_BATCH = 50


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """The httpx client and the translation of its exceptions."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
            headers={"User-Agent": "genesys-presence-monitor"},
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        form: Mapping[str, str] | None = None,
    ) -> RawResponse:
        try:
            response = await self._client.request(
                method,
                url,
                params=_encode_params(params),
                headers=headers,
                content=None if body is None else json.dumps(body, separators=(",", ":")),
                data=form,
            )
        except httpx.TimeoutException as exc:
            raise TransportError(f"{method} {_where(url)}: timed out") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {_where(url)}: {exc or type(exc).__name__}") from exc
        return RawResponse(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _encode_params(params: Params | None) -> dict[str, str | int] | None:
    # Genesys takes list parameters comma-joined, as the official SDK sends them.
    if params is None:
        return None
    return {k: v if isinstance(v, str | int) else ",".join(v) for k, v in params.items()}


class ApiObserver(Protocol):
    """Hears about every request, for metrics."""

    def on_response(self, route: str, status: int, seconds: float) -> None: ...

    def on_rate_limited(self, route: str, retry_after_s: float) -> None: ...

    def on_transport_error(self, route: str) -> None: ...


class TokenProvider(Protocol):
    async def bearer(self) -> str: ...

    def invalidate(self, value: str) -> None: ...


def error_from(
    status: int, body: bytes, headers: Mapping[str, str], method: str, path: str
) -> ApiError:
    """The ApiError for an error answer, with Genesys's message, code and correlation id."""
    message, code = f"HTTP {status}", ""
    try:
        decoded = json.loads(body) if body else {}
        if isinstance(decoded, dict):
            message = str(decoded.get("message") or decoded.get("error_description") or message)
            code = str(decoded.get("code") or decoded.get("error") or "")
    except (ValueError, UnicodeDecodeError):
        message = body[:200].decode("utf-8", "replace") or message
    extra = {
        "code": code,
        "correlation_id": headers.get("inin-correlation-id", ""),
        "method": method,
        "path": path,
    }
    if status == 429:
        return RateLimited(retry_after_of(headers), message, **extra)
    if status == 404:
        return NotFound(status, message, **extra)
    if status >= 500:
        return ServerError(status, message, **extra)
    return ApiError(status, message, **extra)


def retry_after_of(headers: Mapping[str, str]) -> float:
    """Retry-After in seconds; Genesys documents integer seconds. 3 s when absent or unreadable."""
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return 3.0


class GenesysApi:
    """The REST calls of one OAuth client."""

    def __init__(
        self,
        transport: Transport,
        api_url: str,
        tokens: TokenProvider,
        clock: Clock,
        *,
        requests_per_minute: int = 300,
        action_share: float = 0.3,
        max_retry_after_s: float = 180.0,
        max_retry_time_s: float = 300.0,
        users_result_cap: int = 10_000,
        search_page_size: int = 100,
        observer: ApiObserver | None = None,
    ) -> None:
        self._transport = transport
        self._base = api_url.rstrip("/")
        self._tokens = tokens
        self._clock = clock
        self._budget = RateBudget(requests_per_minute)
        self._action_budget = RateBudget(max(1, int(requests_per_minute * action_share)))
        self._max_retry_after_s = max_retry_after_s
        self._max_retry_time_s = max_retry_time_s
        self._users_result_cap = users_result_cap
        self._search_page_size = search_page_size
        self._observer = observer

    async def call(
        self,
        method: str,
        path: str,
        *,
        route: str,
        params: Params | None = None,
        body: Any = None,
        purpose: Purpose = "monitor",
    ) -> Any:
        """Send one request with budget, retries and translation; returns the decoded JSON body
        (None when there is none). Raises ApiError subclasses or TransportError."""
        started = self._clock.monotonic()
        attempt = 0
        refreshed = False
        while True:
            await self._spend(purpose)
            token = await self._tokens.bearer()
            sent = time.perf_counter()
            try:
                response = await self._transport.send(
                    method,
                    self._base + path,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                    body=body,
                )
            except TransportError:
                if self._observer:
                    self._observer.on_transport_error(route)
                delay = self._retry_in(503, None, attempt, started)  # as a transient outage
                if delay is None:
                    raise
                attempt += 1
                await self._clock.sleep(delay)
                continue
            if self._observer:
                self._observer.on_response(route, response.status, time.perf_counter() - sent)
            if response.status < 400:
                return _decode(response, method, path)
            error = error_from(response.status, response.body, response.headers, method, path)
            if response.status == 401 and not refreshed:
                # A token can die early (revoked, or the clock disagrees): one fresh try.
                self._tokens.invalidate(token)
                refreshed = True
                continue
            if isinstance(error, RateLimited):
                if self._observer:
                    self._observer.on_rate_limited(route, error.retry_after)
                # The pause applies to the token, not just to this request.
                self._budget.pause_until(self._clock.monotonic() + error.retry_after)
            retry_after = error.retry_after if isinstance(error, RateLimited) else None
            if retry_after is None and "retry-after" in response.headers:
                retry_after = retry_after_of(response.headers)
            delay = self._retry_in(response.status, retry_after, attempt, started)
            if delay is None:
                raise error
            attempt += 1
            await self._clock.sleep(delay)

    def _retry_in(
        self, status: int, retry_after: float | None, attempt: int, started: float
    ) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        elapsed = self._clock.monotonic() - started
        if elapsed >= self._max_retry_time_s:
            return None
        if status == 429:
            if retry_after is not None and retry_after > self._max_retry_after_s:
                return None  # a daily cap, not a burst: waiting minutes helps nobody
            return 0.0  # the budget's pause does the waiting
        if status not in _RETRIED:
            return None
        return retry_delay(status, retry_after, attempt + 1, elapsed, self._max_retry_after_s)

    async def _spend(self, purpose: Purpose) -> None:
        now = self._clock.monotonic()
        wait = self._budget.reserve(now)
        if purpose == "action":
            wait = max(wait, self._action_budget.reserve(now))
        if wait > 0:
            await self._clock.sleep(wait)

    # --- users ----------------------------------------------------------------------------------

    async def users_page(
        self,
        page_number: int,
        page_size: int,
        *,
        expand: Sequence[str] = (),
        descending: bool = False,
    ) -> UsersPage:
        """One page of active users."""
        params: dict[str, str | int | Sequence[str]] = {
            "pageSize": page_size,
            "pageNumber": page_number,
            "state": "active",
            "sortOrder": "descending" if descending else "ascending",
        }
        if expand:
            params["expand"] = list(expand)
        body = await self.call("GET", "/api/v2/users", route="users", params=params)
        now = self._clock.now_ms()
        return self._parse(lambda b: payloads.parse_users_page(b, now), body, "users")

    async def search_page(
        self,
        criteria: Sequence[Mapping[str, Any]],
        page_number: int,
        page_size: int,
        *,
        expand: Sequence[str] = (),
        descending: bool = False,
    ) -> UsersPage:
        """One page of a user search (POST /api/v2/users/search)."""
        body = await self.call(
            "POST",
            "/api/v2/users/search",
            route="users_search",
            body={
                "pageSize": page_size,
                "pageNumber": page_number,
                "sortOrder": "DESC" if descending else "ASC",
                "sortBy": "name",
                "query": list(criteria),
                "expand": list(expand),
            },
        )
        now = self._clock.now_ms()
        return self._parse(lambda b: payloads.parse_search_page(b, now), body, "users search")

    async def all_users(self, page_size: int, *, expand: Sequence[str] = ()) -> list[UserRecord]:
        """Every active user, sorted by id."""
        users = [user async for page in self.user_pages(page_size, expand=expand) for user in page]
        return sorted(users, key=lambda u: u.agent.id)

    async def user_pages(
        self, page_size: int, *, expand: Sequence[str] = ()
    ) -> AsyncIterator[list[UserRecord]]:
        """Every active user, page by page, each user once.

        Genesys refuses to page past a number of results of one listing (pageNumber*pageSize).
        Up to twice that, the listing is read from both ends (ascending, then descending); a
        bigger org is read division by division through the search API, each from both ends.
        """
        seen: set[str] = set()
        cap = self._users_result_cap

        async def listing(number: int, descending: bool) -> UsersPage:
            return await self.users_page(number, page_size, expand=expand, descending=descending)

        first = await listing(1, False)
        if first.total <= 2 * cap:
            async for users in _pages(listing, page_size, cap, first, seen):
                yield users
        else:
            size = self._search_page_size
            for division_id, _name in await self.divisions():
                criteria = [
                    {"type": "EXACT", "fields": ["division.id"], "values": [division_id]},
                    {"type": "EXACT", "fields": ["state"], "values": ["active"]},
                ]

                async def search(
                    number: int, descending: bool, criteria: list[dict[str, Any]] = criteria
                ) -> UsersPage:
                    return await self.search_page(
                        criteria, number, size, expand=expand, descending=descending
                    )

                async for users in _pages(search, size, cap, await search(1, False), seen):
                    yield users
        if len(seen) < first.total:
            log.warning("users_not_listed", listed=len(seen), total=first.total)

    async def users_by_id(
        self, ids: Sequence[str], *, expand: Sequence[str] = ()
    ) -> AsyncIterator[list[UserRecord]]:
        """The users with these ids, whatever their state, with their expands: one list per
        request of at most USERS_BY_ID_BATCH ids, as each is read."""
        for i in range(0, len(ids), USERS_BY_ID_BATCH):
            batch = list(ids[i : i + USERS_BY_ID_BATCH])
            params: dict[str, str | int | Sequence[str]] = {
                "id": batch,
                "pageSize": len(batch),
                "state": "any",
            }
            if expand:
                params["expand"] = list(expand)
            body = await self.call("GET", "/api/v2/users", route="users", params=params)
            parse = functools.partial(payloads.parse_users_page, fallback_ms=self._clock.now_ms())
            page = self._parse(parse, body, "users")
            yield list(page.users)

    async def queue_member_ids(self, queue_id: str, page_size: int = 100) -> list[str]:
        ids: list[str] = []
        page_number = 1
        while True:
            body = await self.call(
                "GET",
                f"/api/v2/routing/queues/{queue_id}/members",
                route="queue_members",
                params={"pageSize": page_size, "pageNumber": page_number},
            )
            pairs, next_uri = self._parse_listing(body, "queue members")
            ids += [payloads.agent_id(member_id, "queue member id") for member_id, _ in pairs]
            if next_uri is None or not pairs:
                return ids
            page_number += 1

    async def queues(self) -> list[tuple[str, str]]:
        """(id, name) of every queue."""
        return await self._listing("/api/v2/routing/queues", "queues")

    async def divisions(self) -> list[tuple[str, str]]:
        """(id, name) of every division."""
        return await self._listing("/api/v2/authorization/divisions", "divisions")

    async def groups(self) -> list[tuple[str, str]]:
        """(id, name) of every group."""
        return await self._listing("/api/v2/groups", "groups")

    async def group_member_ids(self, group_id: str) -> list[str]:
        """Ids of a group's individual members."""
        pairs = await self._listing(f"/api/v2/groups/{group_id}/individuals", "group_members")
        return [payloads.agent_id(member_id, "group member id") for member_id, _ in pairs]

    async def _listing(self, path: str, route: str) -> list[tuple[str, str]]:
        result: list[tuple[str, str]] = []
        page_number = 1
        while True:
            body = await self.call(
                "GET", path, route=route, params={"pageSize": 100, "pageNumber": page_number}
            )
            pairs, next_uri = self._parse_listing(body, route)
            result += pairs
            if next_uri is None or not pairs:
                return result
            page_number += 1

    # --- presence and routing status ------------------------------------------------------------

    async def presence_definitions(self) -> list[PresenceDefinitionInfo]:
        body = await self.call("GET", "/api/v2/presence/definitions", route="presence_definitions")
        return self._parse(payloads.parse_definitions, body, "presence definitions")

    async def bulk_presences(self, ids: Sequence[str]) -> list[Update]:
        """Current presences of up to BULK_PRESENCE_BATCH users."""
        body = await self.call(
            "GET",
            "/api/v2/users/presences/purecloud/bulk",
            route="presences_bulk",
            params={"id": list(ids)},
        )
        now = self._clock.now_ms()
        return self._parse(lambda b: payloads.parse_bulk_presences(b, now), body, "bulk presences")

    async def routing_status(self, user_id: str) -> Update:
        body = await self.call(
            "GET", f"/api/v2/users/{user_id}/routingstatus", route="routingstatus"
        )
        now = self._clock.now_ms()
        return self._parse(
            lambda b: payloads.parse_routing(b, user_id, now), body, "routing status"
        )

    async def patch_presence(self, user_id: str, definition_id: str) -> Update:
        body = await self.call(
            "PATCH",
            f"/api/v2/users/{user_id}/presences/purecloud",
            route="presence_patch",
            body={"presenceDefinition": {"id": definition_id}},
            purpose="action",
        )
        now = self._clock.now_ms()
        return self._parse(lambda b: payloads.parse_presence(b, user_id, now), body, "presence")

    async def put_routing_status(self, user_id: str, status: str) -> Update:
        """Set a user's routing status (Genesys accepts IDLE from NOT_RESPONDING)."""
        body = await self.call(
            "PUT",
            f"/api/v2/users/{user_id}/routingstatus",
            route="routingstatus_put",
            body={"status": status},
            purpose="action",
        )
        now = self._clock.now_ms()
        return self._parse(
            lambda b: payloads.parse_routing(b, user_id, now), body, "routing status"
        )

    async def put_bulk_presences(self, items: Sequence[tuple[str, str]]) -> list[Update]:
        """Set (user id, definition id) pairs in one call; returns the resulting presences."""
        body = await self.call(
            "PUT",
            "/api/v2/users/presences/bulk",
            route="presences_bulk_put",
            body=[
                {"id": uid, "source": "PURECLOUD", "presenceDefinition": {"id": def_id}}
                for uid, def_id in items
            ],
            purpose="action",
        )
        now = self._clock.now_ms()
        return self._parse(lambda b: payloads.parse_bulk_presences(b, now), body, "bulk presences")

    # --- notifications --------------------------------------------------------------------------

    async def create_channel(self) -> ChannelInfo:
        body = await self.call("POST", "/api/v2/notifications/channels", route="channels_create")
        return self._parse(payloads.parse_channel, body, "channel")

    async def channel_exists(self, channel_id: str) -> bool:
        try:
            await self.call(
                "HEAD", f"/api/v2/notifications/channels/{channel_id}", route="channels_head"
            )
        except NotFound:
            return False
        return True

    async def put_subscriptions(self, channel_id: str, topics: Sequence[str]) -> SubscriptionResult:
        """Replace a channel's subscriptions; rejected topics are reported, not raised."""
        requested = list(topics)
        body = await self.call(
            "PUT",
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            route="subscriptions_put",
            params={"ignoreErrors": "true"},
            body=[{"id": topic} for topic in requested],
        )
        return self._parse(
            lambda b: payloads.parse_subscriptions(b, requested), body, "subscriptions"
        )

    async def delete_subscriptions(self, channel_id: str) -> None:
        await self.call(
            "DELETE",
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            route="subscriptions_delete",
        )

    # --- parsing --------------------------------------------------------------------------------

    def _parse(self, parse: Callable[[Any], T], body: Any, what: str) -> T:
        try:
            return parse(body)
        except DecodeError as exc:
            raise BadResponse(200, f"{what}: {exc}") from None

    def _parse_listing(self, body: Any, what: str) -> tuple[list[tuple[str, str]], str | None]:
        return self._parse(lambda b: payloads.parse_entity_ids(b, what), body, what)


PageFetcher = Callable[[int, bool], Awaitable[UsersPage]]


async def _pages(
    fetch: PageFetcher, page_size: int, result_cap: int, page: UsersPage, seen: set[str]
) -> AsyncIterator[list[UserRecord]]:
    """The users of a paged listing whose first page is `page`, page by page: ascending, then
    (past the cap) descending. Users already in `seen` are left out; `seen` grows."""
    max_pages = max(1, result_cap // page_size)
    listed: set[str] = set()
    for descending in (False, True):
        number = 1
        while True:
            if descending or number > 1:
                page = await fetch(number, descending)
            fresh = [u for u in page.users if u.agent.id not in seen]
            seen.update(u.agent.id for u in fresh)
            listed.update(u.agent.id for u in page.users)
            if fresh:
                yield fresh
            if len(listed) >= page.total or not page.users:
                return
            if number >= min(page.page_count, max_pages):
                break
            number += 1


def _decode(response: RawResponse, method: str, path: str) -> Any:
    if not response.body:
        return None
    try:
        return json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponse(
            response.status, f"{method} {path}: the answer is not JSON", method=method, path=path
        ) from None
