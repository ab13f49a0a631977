"""Presence: the definitions (current and deprecated APIs, and system presences), one user's
Genesys presence (read and patch), and the bulk read and write.

Every change goes through `Org.set_presence` with cause "api", which applies Genesys's coupling of
presence and routing status and records the ground truth.
"""

from __future__ import annotations

from typing import Any

from monitor.core.model import Kind, Presence
from monitor.httpserver import Request, Response, Router
from monitor.sim import payloads
from monitor.sim.org import PresenceDefinition, SimAgent
from monitor.sim.rest_params import (
    RestContext,
    bad_request,
    choice_arg,
    int_arg,
    json_list,
    json_object,
    not_found,
    optional_str,
    other_query,
)
from monitor.sim.settings import RestPresenceCasing

_DEFINITIONS = "/api/v2/presence/definitions"
_OLD_DEFINITIONS = "/api/v2/presencedefinitions"
_MAX_OLD_PAGE_SIZE = 500
CAUSE = "api"


class PresenceApi:
    def __init__(self, ctx: RestContext) -> None:
        self._ctx = ctx

    def add_routes(self, router: Router) -> None:
        router.add("GET", _DEFINITIONS, self._definitions)
        router.add("GET", _DEFINITIONS + "/{definition_id}", self._definition)
        router.add("GET", _OLD_DEFINITIONS, self._old_definitions)
        router.add("GET", "/api/v2/systempresences", self._system_presences)
        # The bulk routes before `/users/{user_id}/...`, which cannot match them but reads better.
        router.add("GET", "/api/v2/users/presences/purecloud/bulk", self._bulk_get)
        router.add("PUT", "/api/v2/users/presences/bulk", self._bulk_put)
        router.add("GET", "/api/v2/users/{user_id}/presences/purecloud", self._get)
        router.add("PATCH", "/api/v2/users/{user_id}/presences/purecloud", self._patch)

    @property
    def _casing(self) -> RestPresenceCasing:
        return self._ctx.settings.rest_presence_casing

    # --- definitions ----------------------------------------------------------------------------

    async def _definitions(self, request: Request) -> Response:
        # deactivated=TRUE lists the deactivated definitions as well (UNCONFIRMED: maybe only them).
        deactivated = choice_arg(request, "deactivated", ("TRUE", "FALSE"), "FALSE") == "TRUE"
        locale = request.arg("localeCode")
        entities = [
            payloads.presence_definition(d, locale)
            for d in self._ctx.org.definitions.values()
            if deactivated or not d.deactivated
        ]
        return Response.json(
            {"total": len(entities), "entities": entities, "selfUri": _DEFINITIONS}
        )

    async def _definition(self, request: Request) -> Response:
        definition = self._ctx.org.definitions.get(request.params["definition_id"])
        if definition is None:
            raise not_found(f"presence definition {request.params['definition_id']} not found")
        return Response.json(payloads.presence_definition(definition, request.arg("localeCode")))

    async def _old_definitions(self, request: Request) -> Response:
        page_size = int_arg(request, "pageSize", 25)
        page_number = int_arg(request, "pageNumber", 1)
        if page_size > _MAX_OLD_PAGE_SIZE:
            raise bad_request(f"pageSize must be at most {_MAX_OLD_PAGE_SIZE}, not {page_size}")
        deleted = choice_arg(request, "deleted", ("TRUE", "FALSE", "ALL"), "FALSE")
        chosen = [
            d
            for d in self._ctx.org.definitions.values()
            if deleted == "ALL" or d.deactivated == (deleted == "TRUE")
        ]
        start = (page_number - 1) * page_size
        locale = request.arg("localeCode")
        entities = [
            payloads.organization_presence(d, self._casing, locale)
            for d in chosen[start : start + page_size]
        ]
        return Response.json(
            payloads.paged_listing(
                entities,
                path=_OLD_DEFINITIONS,
                query=other_query(request),
                page_size=page_size,
                page_number=page_number,
                total=len(chosen),
            )
        )

    async def _system_presences(self, request: Request) -> Response:
        return Response.json([payloads.system_presence_entity(p) for p in Presence])

    # --- one user -------------------------------------------------------------------------------

    def _live_agent(self, user_id: str) -> SimAgent:
        agent = self._ctx.agent(user_id)
        if agent.state == "deleted":
            raise not_found(f"user {user_id} not found")
        return agent

    async def _get(self, request: Request) -> Response:
        agent = self._live_agent(request.params["user_id"])
        self._ctx.org.note_read(agent.id, Kind.PRESENCE)
        return Response.json(payloads.user_presence(self._ctx.org, agent, self._casing))

    async def _patch(self, request: Request) -> Response:
        agent = self._live_agent(request.params["user_id"])
        definition, message = self._parse_presence(json_object(request), "the body")
        self._apply(agent, definition, message)
        return Response.json(payloads.user_presence(self._ctx.org, agent, self._casing))

    def _parse_presence(
        self, body: dict[str, Any], where: str
    ) -> tuple[PresenceDefinition | None, str | None]:
        """The definition and message of a `UserPresence` body; `primary` is accepted and has no
        effect, as the Genesys source is every simulated user's primary source."""
        message = optional_str(body, "message")
        primary = body.get("primary")
        if primary is not None and not isinstance(primary, bool):
            raise bad_request(f"primary in {where} must be a boolean")
        raw = body.get("presenceDefinition")
        if raw is None:
            return None, message
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise bad_request(f"presenceDefinition in {where} must be an object with an id")
        definition = self._ctx.org.definitions.get(raw["id"])
        if definition is None:
            raise bad_request(f"presence definition {raw['id']} in {where} does not exist")
        if definition.deactivated:
            raise bad_request(f"presence definition {raw['id']} in {where} is deactivated")
        return definition, message

    def _apply(
        self, agent: SimAgent, definition: PresenceDefinition | None, message: str | None
    ) -> None:
        definition_id = agent.presence_definition_id if definition is None else definition.id
        self._ctx.org.set_presence(agent.id, definition_id, cause=CAUSE, message=message)

    # --- bulk -----------------------------------------------------------------------------------

    async def _bulk_get(self, request: Request) -> Response:
        settings = self._ctx.settings
        ids = list(dict.fromkeys(request.args("id")))
        if not ids:
            raise bad_request("id is required: one or more user ids")
        limit = settings.bulk_presence_max_ids
        if len(ids) > limit:
            if settings.bulk_presence_over_limit == "error":
                raise bad_request(f"at most {limit} ids can be read at once, not {len(ids)}")
            ids = ids[:limit]
        org = self._ctx.org
        found = [org.agents[i] for i in ids if i in org.agents and org.agents[i].state != "deleted"]
        for agent in found:
            org.note_read(agent.id, Kind.PRESENCE)
        return Response.json([payloads.uc_user_presence(org, a, self._casing) for a in found])

    async def _bulk_put(self, request: Request) -> Response:
        items = json_list(request)
        limit = self._ctx.settings.bulk_presence_put_max
        if not items:
            raise bad_request("the body must list at least one presence")
        if len(items) > limit:
            raise bad_request(f"at most {limit} presences can be set at once, not {len(items)}")
        # Everything is checked before anything is applied, so a bad item changes nobody.
        planned: list[tuple[SimAgent, PresenceDefinition | None, str | None]] = []
        for n, item in enumerate(items):
            where = f"item {n}"
            if not isinstance(item, dict):
                raise bad_request(f"{where} must be a JSON object")
            user_id = item.get("id")
            if not isinstance(user_id, str) or not user_id:
                raise bad_request(f"{where} needs the user's id in `id`")
            agent = self._ctx.org.agents.get(user_id)
            if agent is None or agent.state == "deleted":
                raise bad_request(f"{where}: user {user_id} does not exist")
            definition, message = self._parse_presence(item, where)
            if definition is None and message is None:
                raise bad_request(f"{where} sets neither presenceDefinition nor message")
            planned.append((agent, definition, message))
        for agent, definition, message in planned:
            self._apply(agent, definition, message)
        org = self._ctx.org
        return Response.json(
            [payloads.user_presence(org, agent, self._casing) for agent, _, _ in planned]
        )
