"""Notification frames to typed messages: the one place that knows the websocket's JSON shapes.

`decode()` runs on every frame the daemon receives, so it is written for speed: one `json.loads`,
direct dict access, and no regular expression beyond one anchored UUID match. Whatever the frame,
it returns one of the message types below or raises `DecodeError` with a short reason; no other
exception escapes, so a hostile or broken server cannot crash a channel.

Shapes (GENESYS.md section 2):

- `channel.metadata`: heartbeats, and the answer to our `{"message":"ping"}` (`"pong"`).
- `v2.system.socket_closing`: the server will close the socket in about a minute.
- other `v2.system.*`: token revoked, no longer subscribed, ...
- `v2.users.{id}.presence`, `.routingStatus`, `.activity`: the updates we record.
- a bare `{"result": "404"}` without `topicName`: sent by some servers to a channel that was
  evicted (a 21st channel was created) or expired (UNCONFIRMED, see GENESYS.md 1.4).

Topic names are matched case-insensitively ([DOTNET-NH] lower-cases them; the server echoes a topic
as it was subscribed). Agent ids are returned lower-cased, the canonical form of a Genesys id.

Field policy: a field we need that is missing or has the wrong type is an error; an optional field
that is missing is tolerated; a present optional field of the wrong type is an error, since it
means the frame is not what we think it is.
"""

from __future__ import annotations

import json
import json.scanner
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

from monitor.core.model import Kind, Presence, RoutingStatus, Update, normalise_status
from monitor.core.timefmt import parse_iso_ms
from monitor.core.topics import is_agent_id
from monitor.errors import DecodeError

__all__ = [
    "ChannelGone",
    "Heartbeat",
    "Ignored",
    "Message",
    "Pong",
    "SocketClosing",
    "SystemMessage",
    "Updates",
    "decode",
    "encode_ping",
    "parse_timestamp",
]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A `channel.metadata` frame other than a pong: the server's periodic sign of life."""

    message: str


@dataclass(frozen=True, slots=True)
class Pong:
    """The server's answer to our ping (`channel.metadata` with message "pong")."""


@dataclass(frozen=True, slots=True)
class SocketClosing:
    """`v2.system.socket_closing`: the server closes this socket soon; roll over to a new one."""

    message: str


@dataclass(frozen=True, slots=True)
class SystemMessage:
    """Any other `v2.system.*` frame (token revoked, no longer subscribed, ...)."""

    topic: str
    system_topic_type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ChannelGone:
    """A bare `{"result": "<code>"}` frame: the channel was evicted or expired (UNCONFIRMED)."""

    result: str


class Updates(NamedTuple):
    """The presence and/or routing-status updates carried by one `v2.users.{id}.*` frame (a
    named tuple, like Update: one is made for every event frame)."""

    topic: str
    correlation_id: str | None
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed frame for a topic we do not handle (or an acknowledgement we do not need)."""

    topic: str


Message = Heartbeat | Pong | SocketClosing | SystemMessage | ChannelGone | Updates | Ignored

_PING = '{"message":"ping"}'
# The scanner behind json.loads, called directly: it skips loads()'s wrapper and whitespace
# regexes, about a third of the cost of parsing a frame. Anything unusual goes to json.loads.
# (typeshed describes make_scanner's argument as a scanner; it is the decoder whose settings apply.)
_scan_once = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_JSON_SPACE = " \t\n\r"
_PONG = Pong()

# Known names map to one shared string each; only other spellings go through normalise_status,
# whose regular expressions would otherwise dominate the cost of a frame. Sharing matters for
# memory: each frame's text is a new string, and the tracker keeps a few per agent and kind.
_KNOWN_STATUS: dict[str, str] = {s.value: s.value for s in (*Presence, *RoutingStatus)}


# Messages and updates are made with tuple.__new__: a named tuple's own constructor is a Python
# function, and one or two are made for every frame.
_new = tuple.__new__
_PRESENCE = Kind.PRESENCE
_ROUTING = Kind.ROUTING
# Agent ids as topics spell them -> canonical ids, for the agents heard from lately: checking and
# lower-casing the id in every frame's topic would cost more than the rest of the topic's handling.
_AGENTS: dict[str, str] = {}
_AGENTS_KEPT = 100_000

_USERS = "v2.users."
_SYSTEM = "v2.system."
_SUFFIX_PRESENCE = "presence"
_SUFFIX_ROUTING = "routingstatus"
_SUFFIX_ACTIVITY = "activity"
_MAX_REASON_TEXT = 80


def encode_ping() -> str:
    """The text frame that asks the server for a pong ([JAVA-NH] `sendPing()`)."""
    return _PING


def _load(text: str | bytes) -> Any:
    if type(text) is str:
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            # Leading whitespace, or not JSON at all: json.loads decides, with its own message.
            return json.loads(text)
        if end == len(text) or not text[end:].strip(_JSON_SPACE):
            return value
    # Bytes (json.loads detects their encoding), or trailing data for json.loads to report.
    return json.loads(text)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REASON_TEXT else text[: _MAX_REASON_TEXT - 3] + "..."


def parse_timestamp(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 date-time (see `timefmt.parse_iso_ms`); DecodeError if
    it is not one."""
    try:
        return parse_iso_ms(text)
    except ValueError:
        raise DecodeError(f"bad timestamp {_short(text)}") from None


def _event_ms(body: dict[str, Any], key: str, received_ms: int) -> int:
    stamp = body.get(key)
    if type(stamp) is str:
        return parse_timestamp(stamp)
    if stamp is None:
        # UNCONFIRMED whether modifiedDate/startTime are always sent; arrival time is the best
        # remaining estimate of when the change happened.
        return received_ms
    raise DecodeError(f"{key} is not a string: {_short(stamp)}")


def _status(value: object, what: str) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what} is not a string: {_short(value)}")
    known = _KNOWN_STATUS.get(value)
    if known is not None:
        return known
    try:
        return normalise_status(value)
    except ValueError:
        raise DecodeError(f"{what} is not a status name: {_short(value)}") from None


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if type(value) is not dict:
        if value is None:
            raise DecodeError(f"missing {key}")
        raise DecodeError(f"{key} is not an object: {_short(value)}")
    return value


def _presence(agent: str, body: dict[str, Any], date_key: str, received_ms: int) -> Update:
    definition = body.get("presenceDefinition")
    if type(definition) is not dict:
        definition = _object(body, "presenceDefinition")
    value = definition.get("systemPresence")
    value = _KNOWN_STATUS.get(value) if type(value) is str else None
    if value is None:
        value = _status(definition.get("systemPresence"), "systemPresence")
    definition_id = definition.get("id")
    if definition_id is not None and type(definition_id) is not str:
        raise DecodeError(f"presenceDefinition.id is not a string: {_short(definition_id)}")
    # An empty id and a missing one mean the same; one spelling keeps comparisons exact. An org
    # has a few dozen presence definitions: one shared string each, as for status names.
    return _new(
        Update,
        (
            agent,
            _PRESENCE,
            value,
            _event_ms(body, date_key, received_ms),
            sys.intern(definition_id) if definition_id else None,
        ),
    )


def _routing(agent: str, routing: dict[str, Any], received_ms: int) -> Update:
    value = routing.get("status")
    known = _KNOWN_STATUS.get(value) if type(value) is str else None
    if known is None:
        known = _status(value, "routingStatus.status")
    return _new(
        Update, (agent, _ROUTING, known, _event_ms(routing, "startTime", received_ms), None)
    )


def _agent(text: str, topic: str) -> str:
    """The canonical id (lower-case, one shared string) of an agent id as a topic spells it."""
    agent = _AGENTS.get(text)
    if agent is None:
        if not is_agent_id(text):
            raise DecodeError(f"agent id in topic is not a UUID: {_short(topic)}")
        agent = sys.intern(text.lower())
        if len(_AGENTS) >= _AGENTS_KEPT:
            _AGENTS.clear()
        # Interned, the key is the canonical id itself whenever the topic spells it in lower
        # case (as Genesys does): the table then costs no strings of its own.
        _AGENTS[sys.intern(text)] = agent
    return agent


def _user_frame(frame: dict[str, Any], topic: str, received_ms: int) -> Message:
    agent, dot, suffix = topic[len(_USERS) :].rpartition(".")
    suffix = suffix.lower()
    if not dot or suffix not in (_SUFFIX_PRESENCE, _SUFFIX_ROUTING, _SUFFIX_ACTIVITY):
        return Ignored(topic)
    # One shared string per agent, as for status names: ids from frames end up in the tracker's
    # and the metrics' tables, and a copy per frame would be kept for as long as they are.
    agent = _agent(agent, topic)
    body = frame.get("eventBody")
    if type(body) is not dict:
        body = _object(frame, "eventBody")
    metadata = frame.get("metadata")
    correlation = metadata.get("CorrelationId") if type(metadata) is dict else None
    if type(correlation) is not str:
        correlation = None
    updates: tuple[Update, ...]
    if suffix == _SUFFIX_ROUTING:
        updates = (_routing(agent, _object(body, "routingStatus"), received_ms),)
    elif suffix == _SUFFIX_PRESENCE:
        updates = (_presence(agent, body, "modifiedDate", received_ms),)
    else:
        # The activity topic carries both states; either part may be cut (the published sample
        # lacks routingStatus), so take what is there and refuse only a frame with neither.
        parts: list[Update] = []
        if body.get("presence") is not None:
            parts.append(_presence(agent, _object(body, "presence"), "modifiedDate", received_ms))
        if body.get("routingStatus") is not None:
            parts.append(_routing(agent, _object(body, "routingStatus"), received_ms))
        if not parts:
            raise DecodeError("activity frame without presence or routingStatus")
        updates = tuple(parts)
    return _new(Updates, (topic, correlation, updates))


def _optional_text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise DecodeError(f"{key} is not a string: {_short(value)}")
    return value


def _optional_body(frame: dict[str, Any]) -> dict[str, Any]:
    body = frame.get("eventBody")
    if body is None:
        return {}
    if type(body) is not dict:
        raise DecodeError(f"eventBody is not an object: {_short(body)}")
    return body


def _bare_result(frame: dict[str, Any]) -> Message:
    result = frame.get("result")
    if result is None:
        raise DecodeError("frame has neither topicName nor result")
    if type(result) is int:
        result = str(result)
    if type(result) is not str:
        raise DecodeError(f"result is not a string: {_short(result)}")
    # A 2xx result acknowledges a websocket subscribe request, which the daemon does not make;
    # it says nothing about the channel's health.
    if len(result) == 3 and result[0] == "2" and result.isascii() and result.isdigit():
        return Ignored("")
    return ChannelGone(result)


def decode(text: str | bytes, received_ms: int) -> Message:
    """Decode one websocket text frame received at `received_ms` (epoch ms).

    Raises DecodeError, and nothing else, for anything that is not a well-formed frame.
    """
    try:
        frame = _load(text)
    except (ValueError, TypeError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and oversized integers;
        # RecursionError is deep nesting.
        raise DecodeError(f"not JSON: {_short(str(exc))}") from None
    if type(frame) is not dict:
        raise DecodeError(f"frame is not a JSON object but {type(frame).__name__}")
    topic = frame.get("topicName")
    if topic is None:
        return _bare_result(frame)
    if type(topic) is not str:
        raise DecodeError(f"topicName is not a string: {_short(topic)}")
    # Slicing before lower-casing keeps the hot path from lower-casing the whole topic, and keeps
    # indices aligned with the original (lower-casing can change the length of non-ASCII text).
    if topic[: len(_USERS)].lower() == _USERS:
        return _user_frame(frame, topic, received_ms)
    lowered = topic.lower()
    if lowered == "channel.metadata":
        message = _optional_text(_optional_body(frame), "message")
        if message.lower() == "pong":
            return _PONG
        return Heartbeat(message)
    if lowered.startswith(_SYSTEM):
        body = _optional_body(frame)
        if lowered == "v2.system.socket_closing":
            return SocketClosing(_optional_text(body, "message"))
        return SystemMessage(
            topic,
            _optional_text(body, "systemTopicType"),
            _optional_text(body, "reason"),
            _optional_text(body, "message"),
        )
    return Ignored(topic)
