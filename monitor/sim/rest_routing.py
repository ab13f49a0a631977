"""Routing: queues and their members, divisions, and a user's routing status.

Queue members are listed without `total`/`pageCount`, and an oversized `pageSize` is clamped, not
refused, as Genesys does. The routing status can only be cleared through the API (NOT_RESPONDING
to IDLE) or taken off queue; going On Queue is done by presence.
"""

from __future__ import annotations

from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.httpserver import Request, Response, Router
from monitor.sim import payloads
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

_QUEUES = "/api/v2/routing/queues"
_DIVISIONS = "/api/v2/authorization/divisions"
# Listing queues and divisions: Genesys's limit is not documented; 500 matches the users API.
_MAX_PAGE_SIZE = 500
CAUSE = "api"


class RoutingApi:
    def __init__(self, ctx: RestContext) -> None:
        self._ctx = ctx

    def add_routes(self, router: Router) -> None:
        router.add("GET", _QUEUES, self._queues)
        router.add("GET", _QUEUES + "/{queue_id}/members", self._members)
        router.add("GET", _DIVISIONS, self._divisions)
        router.add("GET", "/api/v2/users/{user_id}/routingstatus", self._get_status)
        router.add("PUT", "/api/v2/users/{user_id}/routingstatus", self._put_status)

    # --- queues and divisions -------------------------------------------------------------------

    def _page(self, request: Request) -> tuple[int, int]:
        page_size = int_arg(request, "pageSize", 25)
        if page_size > _MAX_PAGE_SIZE:
            raise bad_request(f"pageSize must be at most {_MAX_PAGE_SIZE}, not {page_size}")
        return page_size, int_arg(request, "pageNumber", 1)

    async def _queues(self, request: Request) -> Response:
        org = self._ctx.org
        page_size, page_number = self._page(request)
        queues = sorted(org.queues.values(), key=lambda q: (q.name.lower(), q.id))
        ids = set(request.args("id"))
        if ids:
            queues = [q for q in queues if q.id in ids]
        divisions = set(request.args("divisionId"))
        if divisions:
            queues = [q for q in queues if q.division_id in divisions]
        name = request.arg("name")
        if name:
            # Genesys matches queue names with a trailing `*` as a prefix, otherwise exactly.
            prefix = name.endswith("*")
            wanted = name.rstrip("*").lower()
            queues = [
                q
                for q in queues
                if (q.name.lower().startswith(wanted) if prefix else q.name.lower() == wanted)
            ]
        if sort_descending(request):
            queues.reverse()
        start = (page_number - 1) * page_size
        entities = [
            payloads.queue(org, q, sum(1 for m in q.member_ids if org.agents[m].state == "active"))
            for q in queues[start : start + page_size]
        ]
        return Response.json(
            payloads.paged_listing(
                entities,
                path=_QUEUES,
                query=other_query(request),
                page_size=page_size,
                page_number=page_number,
                total=len(queues),
            )
        )

    async def _members(self, request: Request) -> Response:
        ctx = self._ctx
        queue = ctx.org.queues.get(request.params["queue_id"])
        if queue is None:
            raise not_found(f"queue {request.params['queue_id']} not found")
        # Clamped, not refused: Genesys staff said an oversized page returns up to the maximum.
        page_size = min(int_arg(request, "pageSize", 25), ctx.settings.queue_members_max_page_size)
        page_number = int_arg(request, "pageNumber", 1)
        member_ids = set(queue.member_ids)
        members = [a for a in ctx.agents_by_name() if a.id in member_ids and a.state == "active"]
        statuses = {s.upper() for s in request.args("routingStatus")}
        if statuses:
            members = [a for a in members if a.routing_status.value in statuses]
        presences = {p.upper().replace(" ", "_") for p in request.args("presence")}
        if presences:
            members = [a for a in members if ctx.org.presence_of(a).value in presences]
        name = request.arg("name")
        if name:
            members = [a for a in members if name.lower() in a.name.lower()]
        member_by = choice_arg(request, "memberBy", ("user", "group"), "user")
        if member_by == "group" or (request.arg("joined") or "true").lower() == "false":
            # Every simulated member is a joined, direct (user) member.
            members = []
        if sort_descending(request):
            members = members[::-1]
        presence, routing = ctx.expands(request)
        start = (page_number - 1) * page_size
        casing = ctx.settings.rest_presence_casing
        entities = [
            payloads.queue_member(
                ctx.org,
                queue,
                a,
                casing,
                presence=ctx.best_effort(presence),
                routing=ctx.best_effort(routing),
            )
            for a in members[start : start + page_size]
        ]
        return Response.json(
            payloads.cursor_listing(
                entities,
                path=f"{_QUEUES}/{queue.id}/members",
                query=other_query(request),
                page_size=page_size,
                page_number=page_number,
                has_next=start + page_size < len(members),
            )
        )

    async def _divisions(self, request: Request) -> Response:
        org = self._ctx.org
        page_size, page_number = self._page(request)
        divisions = list(org.divisions.values())
        home_id = divisions[0].id if divisions else ""
        ids = set(request.args("id"))
        if ids:
            divisions = [d for d in divisions if d.id in ids]
        start = (page_number - 1) * page_size
        entities = [
            payloads.authz_division(d, d.id == home_id)
            for d in divisions[start : start + page_size]
        ]
        return Response.json(
            payloads.paged_listing(
                entities,
                path=_DIVISIONS,
                query=other_query(request),
                page_size=page_size,
                page_number=page_number,
                total=len(divisions),
            )
        )

    # --- routing status -------------------------------------------------------------------------

    async def _get_status(self, request: Request) -> Response:
        user_id = request.params["user_id"]
        agent = self._ctx.org.agents.get(user_id)
        if agent is None:
            # Documented: OFF_QUEUE for a user that does not exist, rather than a 404.
            return Response.json(payloads.unknown_routing_status(user_id))
        self._ctx.org.note_read(agent.id, Kind.ROUTING)
        return Response.json(payloads.routing_status(agent))

    async def _put_status(self, request: Request) -> Response:
        org = self._ctx.org
        agent = self._ctx.agent(request.params["user_id"])
        body = json_object(request)
        raw = body.get("status")
        if not isinstance(raw, str):
            raise bad_request("status is required: IDLE or OFF_QUEUE")
        try:
            status = RoutingStatus(raw.upper())
        except ValueError:
            raise bad_request(f"{raw!r} is not a routing status") from None
        current = agent.routing_status
        if status is RoutingStatus.OFF_QUEUE:
            # Taking an agent off queue ends On Queue: the presence goes to Available, and the
            # coupling in the org makes the routing status OFF_QUEUE (UNCONFIRMED).
            if org.presence_of(agent) is Presence.ON_QUEUE:
                available = org.system_definition(Presence.AVAILABLE).id
                org.set_presence(agent.id, available, cause=CAUSE)
            else:
                org.set_routing(agent.id, RoutingStatus.OFF_QUEUE, cause=CAUSE)
        elif status is RoutingStatus.IDLE:
            if current is RoutingStatus.NOT_RESPONDING:
                org.set_routing(agent.id, RoutingStatus.IDLE, cause=CAUSE)
            elif current is not RoutingStatus.IDLE:
                raise bad_request(
                    f"the routing status can be set to IDLE only from NOT_RESPONDING; the user is "
                    f"{current.value} (go On Queue by setting the presence instead)"
                )
        else:
            raise bad_request(
                f"the routing status cannot be set to {status.value}: the system sets it; only "
                "IDLE (from NOT_RESPONDING) and OFF_QUEUE can be set"
            )
        return Response.json(payloads.routing_status(agent))
