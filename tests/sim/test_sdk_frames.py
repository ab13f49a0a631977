"""The official Genesys SDK reads the simulator's notification frames and REST responses.

Frames are deserialised with the SDK's own `ApiClient.deserialize` into the models its
notification mapping names; REST responses come back through the SDK's `NotificationsApi`, pointed
at the simulator. Every field sent must land in a model attribute (nothing lost), and no enum may
fall back to the SDK's "outdated_sdk_version" marker.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import PureCloudPlatformClientV2 as sdk

from monitor.core.model import Presence, RoutingStatus
from monitor.sim import frames
from tests.sim.notifications_harness import CHANNELS, events, next_matching, running_sim

_FALLBACK = "outdated_sdk_version"


class _Body:
    """The two things `ApiClient.deserialize` reads from an HTTP response."""

    def __init__(self, text: str) -> None:
        self.data = text

    def getheader(self, name: str) -> str | None:
        return "application/json" if name.lower() == "content-type" else None


def deserialize(text: str, model: str) -> Any:
    """The SDK's model `model` of the JSON `text`."""
    return sdk.ApiClient().deserialize(_Body(text), model)


def assert_complete(data: Any, obj: Any, where: str = "$") -> None:
    """Every field of `data` reached `obj`, and no enum fell back to the SDK's marker."""
    if isinstance(data, dict) and hasattr(obj, "attribute_map"):
        by_json_name = {json_name: attr for attr, json_name in obj.attribute_map.items()}
        for key, value in data.items():
            assert key in by_json_name, f"{where}.{key} has no attribute in {type(obj).__name__}"
            attribute = getattr(obj, by_json_name[key])
            assert attribute is not None, f"{where}.{key} was lost"
            assert_complete(value, attribute, f"{where}.{key}")
    elif isinstance(data, list):
        assert isinstance(obj, list)
        assert len(obj) == len(data)
        for n, (item, model) in enumerate(zip(data, obj, strict=True)):
            assert_complete(item, model, f"{where}[{n}]")
    else:
        assert obj != _FALLBACK, f"{where}: {data!r} is not a value this SDK knows"


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_live_event_frames_deserialise_into_the_sdk_models() -> None:
    """Presence, routing-status and activity frames from a socket fill the SDK models completely."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        _, ws = await sim.connected_channel(
            [f"v2.users.{agent}?presence&routingStatus", f"v2.users.{agent}.activity"]
        )
        changes = sim.org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        received = await events(ws, 4)
        await ws.close()
    by_topic = {f["topicName"]: f for f in received}
    presence_frame = by_topic[f"v2.users.{agent}.presence"]
    routing_frame = by_topic[f"v2.users.{agent}.routingStatus"]
    presence = deserialize(json.dumps(presence_frame["eventBody"]), "PresenceEventUserPresence")
    routing = deserialize(
        json.dumps(routing_frame["eventBody"]), "UserRoutingStatusUserRoutingStatus"
    )
    activity = deserialize(
        json.dumps(received[-1]["eventBody"]), "AgentActivityChangedTopicAgentActivity"
    )
    assert_complete(presence_frame["eventBody"], presence)
    assert_complete(routing_frame["eventBody"], routing)
    assert_complete(received[-1]["eventBody"], activity)
    assert presence.presence_definition.system_presence == "ON_QUEUE"
    assert presence.modified_date == _at(changes[0].event_ms)
    assert (routing.id, routing.routing_status.status) == (agent, "IDLE")
    assert routing.routing_status.start_time == _at(changes[1].event_ms)
    assert activity.routing_status.status == "IDLE"
    assert activity.presence.presence_definition.system_presence == "ON_QUEUE"


def test_every_status_value_is_known_to_the_sdk() -> None:
    """Every presence and routing status the simulator can send deserialises without fallback."""
    for presence in Presence:
        body = frames.presence_body("6a3af858-942f-489d-9700-5f9bcdcdae9b", presence, "", 0)
        assert_complete(json.loads(body), deserialize(body, "PresenceEventUserPresence"))
    for status in RoutingStatus:
        agent = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
        body = frames.routing_body(agent, status, 1_715_677_397_067)
        model = deserialize(body, "UserRoutingStatusUserRoutingStatus")
        assert_complete(json.loads(body), model)
        assert model.routing_status.status == status.value
        activity = frames.activity_body(
            agent,
            status=status,
            start_ms=1,
            definition_id="d",
            system_presence=Presence.ON_QUEUE,
            message="m",
            modified_ms=2,
            queue_ids=["q1", "q2"],
            unchanged_since_ms=0,
        )
        parsed = deserialize(activity, "AgentActivityChangedTopicAgentActivity")
        assert_complete(json.loads(activity), parsed)


async def test_system_frames_deserialise() -> None:
    """socket_closing fits the SDK's system message model; heartbeats have the envelope's topic."""
    async with running_sim(heartbeat_interval_s=0.05) as sim:
        channel, ws = await sim.connected_channel([])
        heartbeat = await next_matching(ws, lambda f: f["topicName"] == "channel.metadata")
        sim.notifications.send_socket_closing(channel["id"])
        closing = await next_matching(ws, lambda f: f["topicName"] != "channel.metadata")
        await ws.close()
    message = deserialize(json.dumps(closing["eventBody"]), "SystemMessageSystemMessage")
    assert_complete(closing["eventBody"], message)
    assert message.channel_id == channel["id"]
    assert closing["metadata"]["CorrelationId"]
    assert heartbeat["eventBody"] == {"message": "WebSocket Heartbeat"}


async def test_rest_responses_through_the_sdk_notifications_api() -> None:
    """The SDK's NotificationsApi, pointed at the simulator, gets complete models back."""
    async with running_sim() as probe:
        forbidden = probe.agent_ids()[1]
    async with running_sim(forbidden_agent_ids=frozenset({forbidden})) as sim:
        agent = sim.agent_ids()[0]
        host = str(sim.http.base_url).rstrip("/")

        def use_the_sdk() -> tuple[Any, ...]:
            client = sdk.ApiClient(host=host)
            client.access_token = sim.token
            api = sdk.NotificationsApi(client)
            channel = api.post_notifications_channels()
            topics = []
            for name in (
                f"v2.users.{agent}?presence&routingStatus",
                f"v2.users.{forbidden}.presence",
            ):
                topic = sdk.ChannelTopic()
                topic.id = name
                topics.append(topic)
            listing = api.put_notifications_channel_subscriptions(
                channel.id, topics, ignore_errors=True
            )
            got = api.get_notifications_channel_subscriptions(channel.id)
            channels = api.get_notifications_channels(includechannels="oauthclient")
            head = api.head_notifications_channel(channel.id)
            api.delete_notifications_channel_subscriptions(channel.id)
            return channel, listing, got, channels, head

        # The SDK is synchronous: it runs in a thread while the loop serves it.
        channel, listing, got, channels, head = await asyncio.to_thread(use_the_sdk)
        after_delete = await sim.topics(channel.id)
        raw_channels = (await sim.http.get(CHANNELS, headers=sim.auth())).json()
    assert channel.id.startswith("streaming-")
    assert channel.connect_uri.endswith(f"/channels/{channel.id}")
    assert channel.expires.tzinfo is not None
    assert_complete(raw_channels["entities"][0], channels.entities[0])
    states = {t.id: (t.state, t.rejection_reason, t.missing_permissions) for t in listing.entities}
    assert states[f"v2.users.{agent}?presence&routingStatus"] == ("Permitted", None, None)
    state, reason, missing = states[f"v2.users.{forbidden}.presence"]
    assert (state, reason) == ("Rejected", sim.settings.rejection_reason)
    assert missing
    assert [t.id for t in got.entities] == [f"v2.users.{agent}?presence&routingStatus"]
    assert head is None
    assert after_delete == []
