"""Users: `GET /api/v2/users` (paged, with the deep-paging cap), `GET /api/v2/users/{id}`, and the
search API (`POST /api/v2/users/search`, and its `GET ?q64=` cursor form).

Listings are ordered by name. Expansions (`presence`, `routingStatus`) are best effort, as Genesys
warns: `settings.expand_omit_rate` leaves them out of some users.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from monitor.core.model import Kind
from monitor.httpserver import Request, Response, Router
from monitor.sim import payloads
from monitor.sim.org import SimAgent
from monitor.sim.rest_params import (
    RestContext,
    bad_request,
    choice_arg,
    int_arg,
    json_object,
    not_found,
    other_query,
    sort_descending,
)
from monitor.sim.search import SearchQuery

_USERS = "/api/v2/users"
_SEARCH = "/api/v2/users/search"
_STATES = ("active", "inactive", "deleted", "any")


class UsersApi:
    def __init__(self, ctx: RestContext) -> None:
        self._ctx = ctx
        self._search_cache: dict[tuple[str, int], list[SimAgent]] = {}

    def add_routes(self, router: Router) -> None:
        # The search routes go first: `/users/{user_id}` would otherwise take `/users/search`.
        router.add("POST", _SEARCH, self._search)
        router.add("GET", _SEARCH, self._search_q64)
        router.add("GET", _USERS, self._list)
        router.add("GET", _USERS + "/{user_id}", self._get)

    def _user(self, agent: SimAgent, presence: bool, routing: bool) -> payloads.Json:
        ctx = self._ctx
        presence, routing = ctx.best_effort(presence), ctx.best_effort(routing)
        if presence:
            ctx.org.note_read(agent.id, Kind.PRESENCE)
        if routing:
            ctx.org.note_read(agent.id, Kind.ROUTING)
        return payloads.user(
            ctx.org, agent, ctx.settings.rest_presence_casing, presence=presence, routing=routing
        )

    async def _list(self, request: Request) -> Response:
        settings = self._ctx.settings
        page_size = int_arg(request, "pageSize", 25)
        page_number = int_arg(request, "pageNumber", 1)
        if page_size > settings.users_max_page_size:
            raise bad_request(
                f"pageSize must be at most {settings.users_max_page_size}, not {page_size}"
            )
        state = choice_arg(request, "state", _STATES, "active")
        capped = state in ("inactive", "deleted") or settings.users_cap_applies_to_active
        cap = settings.users_result_cap
        if capped and page_number * page_size > cap:
            # The Terraform provider's note: paging inactive users fails with a 400 past 10,000.
            raise bad_request(
                f"The maximum number of {state} users ({cap:,}) that can be paged through has "
                f"been exceeded: pageNumber*pageSize ({page_number * page_size:,}) must be at "
                f"most {cap:,}. Use the search API or narrower queries instead."
            )
        ids = request.args("id")
        agents = self._ctx.agents_by_name()
        if ids:
            wanted = set(ids)
            agents = [a for a in agents if a.id in wanted]
        if state != "any":
            agents = [a for a in agents if a.state == state]
        if sort_descending(request):
            agents = agents[::-1]
        presence, routing = self._ctx.expands(request)
        start = (page_number - 1) * page_size
        entities = [self._user(a, presence, routing) for a in agents[start : start + page_size]]
        return Response.json(
            payloads.paged_listing(
                entities,
                path=_USERS,
                query=other_query(request),
                page_size=page_size,
                page_number=page_number,
                total=len(agents),
            )
        )

    async def _get(self, request: Request) -> Response:
        agent = self._ctx.agent(request.params["user_id"])
        # `state` (default active) must match, as for the listing: a deactivated user is not
        # found unless asked for.
        state = choice_arg(request, "state", _STATES, "active")
        if state not in ("any", agent.state):
            raise not_found(f"user {agent.id} not found (state {state})")
        presence, routing = self._ctx.expands(request)
        return Response.json(self._user(agent, presence, routing))

    # --- search ---------------------------------------------------------------------------------

    async def _search(self, request: Request) -> Response:
        return self._run_search(json_object(request))

    async def _search_q64(self, request: Request) -> Response:
        q64 = request.arg("q64")
        if not q64:
            raise bad_request("q64 is required")
        try:
            body = json.loads(base64.b64decode(q64, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"q64 is not base64-encoded JSON: {exc}") from None
        if not isinstance(body, dict):
            raise bad_request("q64 must encode a JSON object")
        return self._run_search(body)

    def _matches(self, body: dict[str, Any], query: SearchQuery) -> list[SimAgent]:
        # A client pages through one query many times; the fields searched only change with the
        # roster, so the match list is kept until the roster changes.
        criteria = {k: v for k, v in body.items() if k not in ("pageNumber", "pageSize", "expand")}
        key = (json.dumps(criteria, sort_keys=True, default=str), self._ctx.org.roster_version)
        matches = self._search_cache.get(key)
        if matches is None:
            matches = query.run(self._ctx.agents_by_name())
            if len(self._search_cache) >= 32:
                self._search_cache.pop(next(iter(self._search_cache)))
            self._search_cache[key] = matches
        return matches

    def _run_search(self, body: dict[str, Any]) -> Response:
        ctx = self._ctx
        query = SearchQuery.parse(body, max_page_size=ctx.settings.search_max_page_size)
        cap = ctx.settings.search_result_cap
        if query.page_number * query.page_size > cap:
            raise bad_request(
                f"pageNumber*pageSize ({query.page_number * query.page_size:,}) must be at most "
                f"{cap:,}: the search window is exceeded; narrow the query instead."
            )
        matches = self._matches(body, query)
        start = (query.page_number - 1) * query.page_size
        page = matches[start : start + query.page_size]
        results = [self._user(a, query.presence, query.routing) for a in page]

        def page_uri(number: int) -> str:
            cursor = json.dumps({**body, "pageNumber": number}, separators=(",", ":"))
            return f"{_SEARCH}?q64={quote(base64.b64encode(cursor.encode()).decode(), safe='')}"

        return Response.json(
            payloads.users_search_response(
                results,
                page_size=query.page_size,
                page_number=query.page_number,
                total=len(matches),
                page_uri=page_uri,
            )
        )
