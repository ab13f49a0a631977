"""Genesys REST response bodies -> the monitor's own types.

Pure functions: every shape check lives here, and anything that does not match the documented
model raises DecodeError (the API client turns it into BadResponse). Fields the monitor does not
need are ignored, so additions on Genesys's side do not break it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The definition type lives in the core (presence-name resolution is pure); re-exported here for
# the modules that take it from the payload parser.
from monitor.core.model import Agent, Kind, PresenceDefinitionInfo, Update, normalise_status
from monitor.core.timefmt import parse_iso_ms
from monitor.errors import DecodeError


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user from the Users API, with the presence and routing status it was expanded with
    (None when the expand was not returned: Genesys resolves expands on a best-effort basis)."""

    agent: Agent
    presence: Update | None
    routing: Update | None


@dataclass(frozen=True, slots=True)
class UsersPage:
    users: tuple[UserRecord, ...]
    page_number: int
    page_count: int
    total: int


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    connect_uri: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class SubscriptionResult:
    """Per-topic outcome of a subscription request made with ignoreErrors=true."""

    permitted: frozenset[str]
    rejected: Mapping[str, str] = field(default_factory=dict)  # topic -> reason


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _optional_obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _str(obj: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise DecodeError(f"{what}.{key}: expected a string, got {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], key: str, what: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what}.{key}: expected a whole number, got {value!r}")
    return value


def _time(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return parse_iso_ms(value)
    except (TypeError, ValueError):
        raise DecodeError(f"{what}.{key}: not a timestamp: {value!r}") from None


def _status(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise DecodeError(f"{what}: expected a status name, got {text!r}")
    try:
        return normalise_status(text)
    except ValueError as exc:
        raise DecodeError(f"{what}: {exc}") from None


def agent_id(value: Any, what: str = "id") -> str:
    """A Genesys user id (a UUID), lower-cased; one shared string per id (every roster refresh
    and snapshot reads each id again, and the copies would outlive the read in the tables that
    keep them)."""
    try:
        return sys.intern(str(uuid.UUID(value)))
    except (TypeError, ValueError, AttributeError):
        raise DecodeError(f"{what}: not a user id: {value!r}") from None


def parse_presence(body: Any, user_id: str, fallback_ms: int) -> Update:
    """A UserPresence or UcUserPresence -> a presence update (`modifiedDate` or `fallback_ms`)."""
    obj = _obj(body, "presence")
    definition = _obj(obj.get("presenceDefinition"), "presence.presenceDefinition")
    value = _status(definition.get("systemPresence"), "presence.presenceDefinition.systemPresence")
    event_ms = _time(obj, "modifiedDate", "presence")
    return Update(
        user_id,
        Kind.PRESENCE,
        value,
        fallback_ms if event_ms is None else event_ms,
        sys.intern(_str(definition, "id", "presence.presenceDefinition")),
    )


def parse_routing(body: Any, user_id: str, fallback_ms: int) -> Update:
    """A RoutingStatus -> a routing-status update (`startTime` or `fallback_ms`)."""
    obj = _obj(body, "routingStatus")
    value = _status(obj.get("status"), "routingStatus.status")
    event_ms = _time(obj, "startTime", "routingStatus")
    return Update(user_id, Kind.ROUTING, value, fallback_ms if event_ms is None else event_ms)


def parse_user(body: Any, fallback_ms: int) -> UserRecord:
    obj = _obj(body, "user")
    uid = agent_id(obj.get("id"), "user.id")
    division = _optional_obj(obj, "division")
    manager = _optional_obj(obj, "manager")
    # Divisions, departments, managers and states are shared by many agents: one string each.
    agent = Agent(
        id=uid,
        name=_str(obj, "name", "user", required=False) or uid,
        email=_str(obj, "email", "user", required=False),
        division_id=sys.intern(str(division.get("id") or "")),
        division_name=sys.intern(str(division.get("name") or "")),
        department=sys.intern(_str(obj, "department", "user", required=False)),
        manager_id=sys.intern(str(manager.get("id") or "")),
        state=sys.intern(_str(obj, "state", "user", required=False) or "active"),
    )
    presence = obj.get("presence")
    routing = obj.get("routingStatus")
    return UserRecord(
        agent,
        None if presence is None else parse_presence(presence, uid, fallback_ms),
        None if routing is None else parse_routing(routing, uid, fallback_ms),
    )


def parse_users_page(body: Any, fallback_ms: int) -> UsersPage:
    obj = _obj(body, "users page")
    users = tuple(parse_user(u, fallback_ms) for u in _list(obj.get("entities", []), "entities"))
    return UsersPage(
        users,
        page_number=_int(obj, "pageNumber", "users page", 1),
        page_count=_int(obj, "pageCount", "users page", 1),
        total=_int(obj, "total", "users page", len(users)),
    )


def parse_search_page(body: Any, fallback_ms: int) -> UsersPage:
    """A UsersSearchResponse (users under `results`)."""
    obj = _obj(body, "users search")
    results = obj.get("results") or []
    users = tuple(parse_user(u, fallback_ms) for u in _list(results, "results"))
    return UsersPage(
        users,
        page_number=_int(obj, "pageNumber", "users search", 1),
        page_count=_int(obj, "pageCount", "users search", 1),
        total=_int(obj, "total", "users search", len(users)),
    )


def parse_bulk_presences(body: Any, fallback_ms: int) -> list[Update]:
    """The bulk presence list (UcUserPresence: the user id is `userId`, else `id`)."""
    updates = []
    for n, item in enumerate(_list(body, "bulk presences")):
        obj = _obj(item, f"bulk presences[{n}]")
        uid = agent_id(obj.get("userId") or obj.get("id"), f"bulk presences[{n}].userId")
        updates.append(parse_presence(obj, uid, fallback_ms))
    return updates


def parse_channel(body: Any) -> ChannelInfo:
    obj = _obj(body, "channel")
    expires = _time(obj, "expires", "channel")
    if expires is None:
        raise DecodeError("channel.expires: missing")
    uri = _str(obj, "connectUri", "channel")
    if not uri.startswith(("ws://", "wss://")):
        raise DecodeError(f"channel.connectUri: not a websocket URI: {uri!r}")
    return ChannelInfo(_str(obj, "id", "channel"), uri, expires)


def parse_subscriptions(body: Any, requested: list[str]) -> SubscriptionResult:
    """A ChannelTopicEntityListing. A requested topic missing from the answer counts as rejected
    ("Unknown"), as Genesys's own streaming client treats it."""
    obj = _obj(body, "subscriptions")
    permitted: set[str] = set()
    rejected: dict[str, str] = {}
    for n, item in enumerate(_list(obj.get("entities", []), "subscriptions.entities")):
        entity = _obj(item, f"subscriptions.entities[{n}]")
        topic = _str(entity, "id", f"subscriptions.entities[{n}]")
        state = entity.get("state", "Permitted")
        if state == "Permitted":
            permitted.add(topic)
        else:
            reason = entity.get("rejectionReason") or str(state)
            rejected[topic] = str(reason)
    for topic in requested:
        if topic not in permitted and topic not in rejected:
            rejected[topic] = "Unknown"
    # A combined topic can come back permitted while one of its parts is rejected separately.
    return SubscriptionResult(frozenset(permitted & set(requested)), rejected)


def parse_definitions(body: Any) -> list[PresenceDefinitionInfo]:
    obj = _obj(body, "presence definitions")
    result = []
    for n, item in enumerate(_list(obj.get("entities", []), "presence definitions.entities")):
        entity = _obj(item, f"presence definitions.entities[{n}]")
        labels = entity.get("languageLabels") or {}
        if not isinstance(labels, dict):
            raise DecodeError(f"presence definitions.entities[{n}].languageLabels: not an object")
        name = entity.get("name")
        if not labels and isinstance(name, str):
            labels = {"en_US": name}
        result.append(
            PresenceDefinitionInfo(
                id=_str(entity, "id", f"presence definitions.entities[{n}]"),
                system_presence=_status(
                    entity.get("systemPresence"),
                    f"presence definitions.entities[{n}].systemPresence",
                ),
                labels={str(k): str(v) for k, v in labels.items()},
                system=entity.get("type", "System") == "System",
                deactivated=bool(entity.get("deactivated", False)),
            )
        )
    return result


def parse_entity_ids(body: Any, what: str) -> tuple[list[tuple[str, str]], str | None]:
    """(id, name) pairs of a listing and its `nextUri` (None on the last page)."""
    obj = _obj(body, what)
    pairs = []
    for n, item in enumerate(_list(obj.get("entities", []), f"{what}.entities")):
        entity = _obj(item, f"{what}.entities[{n}]")
        pairs.append((_str(entity, "id", f"{what}.entities[{n}]"), str(entity.get("name") or "")))
    next_uri = obj.get("nextUri")
    return pairs, next_uri if isinstance(next_uri, str) and next_uri else None
