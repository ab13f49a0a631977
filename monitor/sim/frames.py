"""Notification frames, shaped exactly like Genesys's (GENESYS.md section 2).

Every event frame is the envelope `{"topicName", "version": "2", "eventBody", "metadata":
{"CorrelationId"}}`. This is the simulator's hot path: a change is turned into an event body once,
and that body is spliced into one envelope per delivered topic name, so building a frame is string
concatenation rather than a `json.dumps` of nested dicts. Only values that can hold arbitrary text
(the presence message, the heartbeat text) go through the JSON encoder; ids, enum values and topic
names come from the org or from the topic grammar and need no escaping.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from functools import lru_cache

_COMPACT = (",", ":")


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as Genesys writes times: ISO 8601, milliseconds, `Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


def correlation_id(rng: random.Random) -> str:
    """A random version-4 UUID from `rng` (cheaper than `uuid.uuid4()`, and reproducible)."""
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _text(value: str) -> str:
    return '""' if not value else json.dumps(value)


def event(topic_name: str, body: str, correlation: str) -> str:
    """The envelope around an already serialised event body."""
    return (
        '{"topicName":"'
        + topic_name
        + '","version":"2","eventBody":'
        + body
        + ',"metadata":{"CorrelationId":"'
        + correlation
        + '"}}'
    )


def presence_body(definition_id: str, system_presence: str, message: str, modified_ms: int) -> str:
    """`PresenceEventUserPresence`: the body of a `v2.users.{id}.presence` event."""
    return (
        '{"source":"PURECLOUD","presenceDefinition":{"id":"'
        + definition_id
        + '","systemPresence":"'
        + system_presence
        + '"},"primary":true,"message":'
        + _text(message)
        + ',"modifiedDate":"'
        + iso_ms(modified_ms)
        + '"}'
    )


def routing_body(agent_id: str, status: str, start_ms: int) -> str:
    """`UserRoutingStatusUserRoutingStatus`: the body of a `v2.users.{id}.routingStatus` event."""
    return (
        '{"id":"'
        + agent_id
        + '","routingStatus":{"status":"'
        + status
        + '","startTime":"'
        + iso_ms(start_ms)
        + '"}}'
    )


def activity_body(
    agent_id: str,
    *,
    status: str,
    start_ms: int,
    definition_id: str,
    system_presence: str,
    message: str,
    modified_ms: int,
    queue_ids: Iterable[str],
    unchanged_since_ms: int,
) -> str:
    """`AgentActivityChangedTopicAgentActivity`: the body of a `v2.users.{id}.activity` event.

    The simulator models neither out-of-office nor queue activation, so both report
    `unchanged_since_ms` as the time they last changed.
    """
    since = iso_ms(unchanged_since_ms)
    queues = ",".join('"' + queue_id + '"' for queue_id in queue_ids)
    return (
        '{"id":"'
        + agent_id
        + '","routingStatus":{"status":"'
        + status
        + '","startTime":"'
        + iso_ms(start_ms)
        + '"},"presence":{"presenceDefinition":{"id":"'
        + definition_id
        + '","systemPresence":"'
        + system_presence
        + '"},"presenceMessage":'
        + _text(message)
        + ',"modifiedDate":"'
        + iso_ms(modified_ms)
        + '"},"outOfOffice":{"active":false,"modifiedDate":"'
        + since
        + '"},"activeQueueIds":['
        + queues
        + '],"dateActiveQueuesChanged":"'
        + since
        + '"}'
    )


def heartbeat(message: str) -> str:
    """The server's periodic `channel.metadata` frame; it carries neither version nor metadata."""
    return json.dumps(
        {"topicName": "channel.metadata", "eventBody": {"message": message}}, separators=_COMPACT
    )


def pong(message: str) -> str:
    """The answer to a client's `{"message":"ping"}`."""
    return heartbeat(message)


def socket_closing(channel_id: str, correlation: str) -> str:
    """`v2.system.socket_closing`: the server will close this socket soon; reconnect now."""
    body = json.dumps(
        {
            "channelId": channel_id,
            "message": "This socket will be closed shortly; connect a new socket to continue.",
        },
        separators=_COMPACT,
    )
    return event("v2.system.socket_closing", body, correlation)


def malformed(frame: str, rng: random.Random) -> str:
    """A broken copy of `frame`, as a faulty server or proxy might send it.

    Truncated JSON, a double-encoded body, a numeric topic name, or a list where the body object
    should be; a client must survive each without losing the real frame that follows.
    """
    variant = rng.randrange(4)
    if variant == 0:
        return frame[: max(1, len(frame) // 2)]
    data = json.loads(frame)
    if variant == 1:
        data["eventBody"] = json.dumps(data.get("eventBody"), separators=_COMPACT)
    elif variant == 2:
        data["topicName"] = rng.randrange(1_000_000)
    else:
        data["eventBody"] = [data.get("eventBody")]
    return json.dumps(data, separators=_COMPACT)
