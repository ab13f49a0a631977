"""The subscriptions endpoints of the simulator's notification service (GENESYS.md 1.4, 1.5).

`GET/POST/PUT/DELETE /api/v2/notifications/channels/{id}/subscriptions`. POST adds topics, PUT
replaces the list. A request either applies completely or not at all: over the topic limit it is a
400, and a topic the client may not see fails the whole request with 403 unless `ignoreErrors=true`
asks for per-topic `Rejected` entities instead.
"""

from __future__ import annotations

from typing import Any

from monitor.httpserver import HttpError, Request, Response, Router
from monitor.sim.channels import Channels, SimChannel
from monitor.sim.http import require_token
from monitor.sim.settings import SimSettings
from monitor.sim.tokens import Tokens
from monitor.sim.topics import (
    ACTIVITY,
    PRESENCE,
    ROUTING_STATUS,
    TopicError,
    UserTopic,
    parse_topic,
)

# What a client would lack to see another user's events. Genesys does not document the permissions
# of these topics (UNCONFIRMED); the names are plausible ones from its permission catalogue.
_PERMISSIONS = {
    PRESENCE: "presence:userPresence:view",
    ROUTING_STATUS: "routing:agent:view",
    ACTIVITY: "routing:agent:view",
}


class SubscriptionsApi:
    """The REST handlers for one notification service's channel subscriptions."""

    def __init__(self, settings: SimSettings, channels: Channels, tokens: Tokens) -> None:
        self._settings = settings
        self._channels = channels
        self._tokens = tokens
        self._forbidden = frozenset(a.lower() for a in settings.forbidden_agent_ids)

    def add_routes(self, router: Router, path: str) -> None:
        router.add("GET", path, self._get)
        router.add("POST", path, self._post)
        router.add("PUT", path, self._put)
        router.add("DELETE", path, self._delete)

    def _channel(self, request: Request) -> SimChannel:
        token = require_token(request, self._tokens)
        channel_id = request.params["channel_id"]
        channel = self._channels.owned(channel_id, token.client_id)
        if channel is None:
            raise HttpError(404, f"channel {channel_id} not found", code="not.found")
        return channel

    async def _get(self, request: Request) -> Response:
        channel = self._channel(request)
        self._channels.touch(channel)
        return self._listing(channel, [])

    async def _post(self, request: Request) -> Response:
        return self._subscribe(request, replace=False)

    async def _put(self, request: Request) -> Response:
        return self._subscribe(request, replace=True)

    async def _delete(self, request: Request) -> Response:
        channel = self._channel(request)
        self._channels.set_topics(channel, {})
        self._channels.touch(channel)
        return Response(self._settings.delete_subscriptions_status)

    def _subscribe(self, request: Request, *, replace: bool) -> Response:
        channel = self._channel(request)
        ignore_errors = _bool_arg(request, "ignoreErrors")
        names = _topic_names(request)
        settings = self._settings
        permitted: dict[str, UserTopic] = {}
        rejected: dict[str, dict[str, Any]] = {}
        forbidden: list[str] = []
        for name in names:
            if name in permitted or name in rejected:
                continue
            try:
                topic = parse_topic(name, max_combined_length=settings.max_combined_topic_length)
            except TopicError as exc:
                if settings.unknown_topic == "error":
                    raise HttpError(400, str(exc), code="bad.request") from exc
                rejected[name] = self._entity(channel, name, "Rejected", reason=str(exc))
                continue
            if topic.agent_id in self._forbidden:
                forbidden.append(name)
                missing = sorted({_PERMISSIONS[suffix] for suffix, _ in topic.parts})
                rejected[name] = self._entity(
                    channel, name, "Rejected", reason=settings.rejection_reason, missing=missing
                )
                continue
            permitted[name] = topic
        if forbidden and not ignore_errors:
            raise HttpError(
                403,
                f"{settings.rejection_reason}: {', '.join(forbidden[:10])}"
                + (f" and {len(forbidden) - 10} more" if len(forbidden) > 10 else ""),
                code="missing.permissions",
            )
        topics = {} if replace else dict(channel.topics)
        topics.update(permitted)
        if len(topics) > settings.max_topics:
            raise HttpError(
                400,
                f"a channel can subscribe to at most {settings.max_topics} topics; "
                f"this request would make it {len(topics)}",
                code="bad.request",
            )
        self._channels.set_topics(channel, topics)
        self._channels.touch(channel)
        if settings.subscribe_extends_expiry:
            self._channels.extend(channel)
        return self._listing(channel, list(rejected.values()))

    def _listing(self, channel: SimChannel, rejected: list[dict[str, Any]]) -> Response:
        entities = [self._entity(channel, name, "Permitted") for name in channel.topics]
        return Response.json({"entities": entities + rejected})

    @staticmethod
    def _entity(
        channel: SimChannel,
        name: str,
        state: str,
        *,
        reason: str | None = None,
        missing: list[str] | None = None,
    ) -> dict[str, Any]:
        entity: dict[str, Any] = {"id": name, "state": state}
        if reason is not None:
            entity["rejectionReason"] = reason
        if missing is not None:
            entity["missingPermissions"] = missing
        entity["selfUri"] = f"/api/v2/notifications/channels/{channel.id}/subscriptions"
        return entity


def _bool_arg(request: Request, name: str) -> bool:
    value = request.arg(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise HttpError(400, f"{name} must be true or false, not {value!r}", code="bad.request")
    return lowered == "true"


def _topic_names(request: Request) -> list[str]:
    """The topic ids of a `[ChannelTopic]` body; 400 for anything else."""
    body = request.json()
    if not isinstance(body, list):
        raise HttpError(400, 'the body must be a JSON list of {"id": topic}', code="bad.request")
    names = []
    for n, item in enumerate(body):
        topic = item.get("id") if isinstance(item, dict) else None
        if not isinstance(topic, str):
            raise HttpError(
                400, f'item {n} of the body is not a {{"id": topic}} object', code="bad.request"
            )
        names.append(topic)
    return names
