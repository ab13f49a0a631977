"""JSON shapes of the Genesys models that the simulator's REST API returns.

Field names follow the official SDK's models (`PureCloudPlatformClientV2.models`), so that its
deserialiser maps every key. `selfUri`s are paths, as Genesys writes them. `systemPresence` is
PascalCase in the presence definitions API (an enum in the SDK) and follows
`settings.rest_presence_casing` everywhere else, because that casing is UNCONFIRMED.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from monitor.core.model import Presence
from monitor.sim.frames import iso_ms
from monitor.sim.org import Division, Org, PresenceDefinition, Queue, SimAgent
from monitor.sim.settings import RestPresenceCasing

Json = dict[str, Any]

# The Genesys (PURECLOUD) presence source. Its real id is not documented; a fixed UUID keeps the
# simulator's responses stable across runs.
PURECLOUD_SOURCE = "PURECLOUD"
PURECLOUD_SOURCE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:sim:presence-source:purecloud"))

_USERS = "/api/v2/users"
_DEFINITIONS = "/api/v2/presence/definitions"
_OLD_DEFINITIONS = "/api/v2/presencedefinitions"


def system_presence(presence: Presence, casing: RestPresenceCasing) -> str:
    """`presence` spelled the way REST payloads spell it: "On Queue", "ON_QUEUE" or "OnQueue"."""
    words = [w.capitalize() for w in presence.value.split("_")]
    if casing == "upper":
        return presence.value
    if casing == "pascal":
        return "".join(words)
    return " ".join(words)


def pascal_presence(presence: Presence) -> str:
    """The definitions API's enum spelling (`OnQueue`)."""
    return system_presence(presence, "pascal")


# --- small references ---------------------------------------------------------------------------


def division_ref(division: Division) -> Json:
    return {
        "id": division.id,
        "name": division.name,
        "selfUri": f"/api/v2/authorization/divisions/{division.id}",
    }


def user_ref(user_id: str) -> Json:
    return {"id": user_id, "selfUri": f"{_USERS}/{user_id}"}


def definition_ref(definition: PresenceDefinition, casing: RestPresenceCasing) -> Json:
    return {
        "id": definition.id,
        "systemPresence": system_presence(definition.system_presence, casing),
        "selfUri": f"{_OLD_DEFINITIONS}/{definition.id}",
    }


# --- presence and routing status ----------------------------------------------------------------


def user_presence(org: Org, agent: SimAgent, casing: RestPresenceCasing) -> Json:
    """`UserPresence` of the PURECLOUD source. `id` is the user's id, so that a bulk answer can be
    matched to its users (the real value is undocumented)."""
    return {
        "id": agent.id,
        "source": PURECLOUD_SOURCE,
        "sourceId": PURECLOUD_SOURCE_ID,
        "primary": True,
        "presenceDefinition": definition_ref(org.definition_of(agent), casing),
        "message": agent.presence_message,
        "modifiedDate": iso_ms(agent.presence_modified_ms),
        "selfUri": f"{_USERS}/{agent.id}/presences/purecloud",
    }


def uc_user_presence(org: Org, agent: SimAgent, casing: RestPresenceCasing) -> Json:
    """`UcUserPresence`, the element of the bulk presence read."""
    return {
        "id": agent.id,
        "name": agent.name,
        "userId": agent.id,
        "source": PURECLOUD_SOURCE,
        "sourceId": PURECLOUD_SOURCE_ID,
        "presenceDefinition": definition_ref(org.definition_of(agent), casing),
        "message": agent.presence_message,
        "modifiedDate": iso_ms(agent.presence_modified_ms),
        "selfUri": f"{_USERS}/{agent.id}/presences/purecloud",
    }


def routing_status(agent: SimAgent) -> Json:
    return {
        "userId": agent.id,
        "status": agent.routing_status.value,
        "startTime": iso_ms(agent.routing_start_ms),
    }


def unknown_routing_status(user_id: str) -> Json:
    """What Genesys answers for a user that does not exist: OFF_QUEUE, no 404 (SDK docstring)."""
    return {"userId": user_id, "status": "OFF_QUEUE"}


# --- users --------------------------------------------------------------------------------------


def user(
    org: Org,
    agent: SimAgent,
    casing: RestPresenceCasing,
    *,
    presence: bool = False,
    routing: bool = False,
) -> Json:
    """`User`, with `presence` and `routingStatus` when expanded."""
    body: Json = {
        "id": agent.id,
        "name": agent.name,
        "division": division_ref(org.divisions[agent.division_id]),
        "department": agent.department,
        "email": agent.email,
        "state": agent.state,
        "title": agent.title,
        "username": agent.email,
        "version": agent.version,
        "acdAutoAnswer": False,
        "selfUri": f"{_USERS}/{agent.id}",
    }
    if agent.manager_id is not None:
        body["manager"] = user_ref(agent.manager_id)
    if presence:
        body["presence"] = user_presence(org, agent, casing)
    if routing:
        body["routingStatus"] = routing_status(agent)
    return body


def queue_member(
    org: Org,
    queue: Queue,
    agent: SimAgent,
    casing: RestPresenceCasing,
    *,
    presence: bool = False,
    routing: bool = False,
) -> Json:
    """`QueueMember`: every member is a direct (user) member, joined, in ring 1."""
    return {
        "id": agent.id,
        "name": agent.name,
        "user": user(org, agent, casing, presence=presence, routing=routing),
        "ringNumber": 1,
        "joined": True,
        "memberBy": "user",
        "routingStatus": routing_status(agent),
        "selfUri": f"/api/v2/routing/queues/{queue.id}/members/{agent.id}",
    }


def queue(org: Org, queue: Queue, member_count: int) -> Json:
    return {
        "id": queue.id,
        "name": queue.name,
        "division": division_ref(org.divisions[queue.division_id]),
        "memberCount": member_count,
        "userMemberCount": member_count,
        "joinedMemberCount": member_count,
        "selfUri": f"/api/v2/routing/queues/{queue.id}",
    }


def authz_division(division: Division, home: bool) -> Json:
    return {**division_ref(division), "description": "", "homeDivision": home}


# --- presence definitions -----------------------------------------------------------------------


def _label(definition: PresenceDefinition, locale: str | None) -> str:
    if locale and locale in definition.labels:
        return definition.labels[locale]
    return definition.label


def presence_definition(definition: PresenceDefinition, locale: str | None = None) -> Json:
    """`OrganizationPresenceDefinition` of the current definitions API."""
    return {
        "id": definition.id,
        "name": _label(definition, locale),
        "type": "System" if definition.primary else "User",
        "languageLabels": dict(definition.labels),
        "systemPresence": pascal_presence(definition.system_presence),
        "divisionId": "*",
        "deactivated": definition.deactivated,
        "selfUri": f"{_DEFINITIONS}/{definition.id}",
    }


def organization_presence(
    definition: PresenceDefinition, casing: RestPresenceCasing, locale: str | None = None
) -> Json:
    """`OrganizationPresence` of the deprecated `/presencedefinitions` API."""
    return {
        "id": definition.id,
        "name": _label(definition, locale),
        "languageLabels": dict(definition.labels),
        "systemPresence": system_presence(definition.system_presence, casing),
        "deactivated": definition.deactivated,
        "primary": definition.primary,
        "selfUri": f"{_OLD_DEFINITIONS}/{definition.id}",
    }


def system_presence_entity(presence: Presence) -> Json:
    """`SystemPresence`. The real ids are UNCONFIRMED; the UPPER_SNAKE name serves as id."""
    return {
        "id": presence.value,
        "name": system_presence(presence, "spaced"),
        "selfUri": f"/api/v2/systempresences/{presence.value}",
    }


# --- listings -----------------------------------------------------------------------------------


def _uri(path: str, query: Sequence[tuple[str, str]], page_size: int, page_number: int) -> str:
    params = [("pageSize", str(page_size)), ("pageNumber", str(page_number)), *query]
    return f"{path}?{urlencode(params, safe=',')}"


def paged_listing(
    entities: list[Json],
    *,
    path: str,
    query: Sequence[tuple[str, str]],
    page_size: int,
    page_number: int,
    total: int,
) -> Json:
    """An entity listing with `total`, `pageCount` and the five URIs (`UserEntityListing` and
    its siblings). `query` holds the request's other parameters, repeated in every URI."""
    page_count = math.ceil(total / page_size) if page_size else 0
    listing: Json = {
        "entities": entities,
        "pageSize": page_size,
        "pageNumber": page_number,
        "total": total,
        "pageCount": page_count,
        "firstUri": _uri(path, query, page_size, 1),
        "selfUri": _uri(path, query, page_size, page_number),
        "lastUri": _uri(path, query, page_size, max(1, page_count)),
    }
    if page_number < page_count:
        listing["nextUri"] = _uri(path, query, page_size, page_number + 1)
    if page_number > 1:
        listing["previousUri"] = _uri(path, query, page_size, page_number - 1)
    return listing


def cursor_listing(
    entities: list[Json],
    *,
    path: str,
    query: Sequence[tuple[str, str]],
    page_size: int,
    page_number: int,
    has_next: bool,
) -> Json:
    """A listing without `total`/`pageCount` (`QueueMemberEntityListing`): the client pages until
    `nextUri` is absent."""
    listing: Json = {
        "entities": entities,
        "pageNumber": page_number,
        "pageSize": page_size,
        "firstUri": _uri(path, query, page_size, 1),
        "selfUri": _uri(path, query, page_size, page_number),
    }
    if has_next:
        listing["nextUri"] = _uri(path, query, page_size, page_number + 1)
    if page_number > 1:
        listing["previousUri"] = _uri(path, query, page_size, page_number - 1)
    return listing


def users_search_response(
    results: list[Json],
    *,
    page_size: int,
    page_number: int,
    total: int,
    page_uri: Callable[[int], str],
) -> Json:
    """`UsersSearchResponse`; `page_uri(n)` is the `q64` cursor URI of page n."""
    page_count = math.ceil(total / page_size) if page_size else 0
    body: Json = {
        "total": total,
        "pageCount": page_count,
        "pageSize": page_size,
        "pageNumber": page_number,
        "currentPage": page_uri(page_number),
        "types": ["users"],
        "results": results,
    }
    if page_number < page_count:
        body["nextPage"] = page_uri(page_number + 1)
    if page_number > 1:
        body["previousPage"] = page_uri(page_number - 1)
    return body
