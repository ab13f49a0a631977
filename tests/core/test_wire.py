"""Decoding notification frames: real-shaped Genesys frames, every malformation, and fuzzing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.model import Kind, Presence, RoutingStatus, Update
from monitor.core.wire import (
    ChannelGone,
    Heartbeat,
    Ignored,
    Message,
    Pong,
    SocketClosing,
    SystemMessage,
    Updates,
    decode,
    encode_ping,
    parse_timestamp,
)
from monitor.errors import DecodeError

RECEIVED = 1_715_677_400_000  # 2024-05-14T09:03:20Z

# GENESYS.md 2.1: the presence guide's example, which has no modifiedDate.
PRESENCE_GUIDE = (
    '{"topicName":"v2.users.9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f.presence","version":"2",'
    '"eventBody":{"source":"PURECLOUD",'
    '"presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"AVAILABLE"},'
    '"primary":true,"message":""},'
    '"metadata":{"CorrelationId":"290034f4-c3d7-46fd-8342-ee5bc859b7e9"}}'
)
# GENESYS.md 2.5: the same with the model's modifiedDate, as the real service is believed to send.
PRESENCE_DATED = (
    '{"topicName":"v2.users.9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f.presence","version":"2",'
    '"eventBody":{"source":"PURECLOUD",'
    '"presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"ON_QUEUE"},'
    '"primary":true,"message":"","modifiedDate":"2024-05-14T09:03:17.067Z"},'
    '"metadata":{"CorrelationId":"290034f4-c3d7-46fd-8342-ee5bc859b7e9"}}'
)
# GENESYS.md 2.2 and 2.3.
HEARTBEAT = '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}'
PONG = '{"topicName":"channel.metadata","eventBody":{"message":"pong"}}'
# GENESYS.md 2.4: the plausible socket_closing body.
SOCKET_CLOSING = (
    '{"topicName":"v2.system.socket_closing","eventBody":{"message":"Socket closing in 1 minute"}}'
)
# GENESYS.md 2.6, with real ids in place of the placeholders.
ROUTING = (
    '{"topicName":"v2.users.e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f.routingStatus","version":"2",'
    '"eventBody":{"id":"e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f",'
    '"routingStatus":{"status":"IDLE","startTime":"2024-05-14T09:03:17.067Z"}},'
    '"metadata":{"CorrelationId":"9e8067c7-1111-4222-8333-444455556666"}}'
)
# GENESYS.md 2.7, the activity topic, ids completed.
ACTIVITY = (
    '{"topicName":"v2.users.e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f.activity","version":"2",'
    '"eventBody":{"id":"e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f",'
    '"routingStatus":{"status":"OFF_QUEUE","startTime":"2021-05-14T09:03:17.067Z"},'
    '"presence":{"presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b",'
    '"systemPresence":"AVAILABLE"},"modifiedDate":"2021-05-14T09:03:17.047Z"},'
    '"outOfOffice":{"active":false,"modifiedDate":"2018-04-02T01:42:52.505Z"},'
    '"activeQueueIds":["4750048b-0000-4000-8000-000000000001"],'
    '"dateActiveQueuesChanged":"2021-03-25T04:15:44.913Z"},'
    '"metadata":{"CorrelationId":"9e8067c7-1111-4222-8333-444455556666"}}'
)
AGENT = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
AVAILABLE_ID = "6a3af858-942f-489d-9700-5f9bcdcdae9b"
OTHER = "e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f"


def ms(text: str) -> int:
    """Epoch ms of an aware ISO timestamp, computed independently of the decoder."""
    moment = datetime.fromisoformat(text)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def presence_frame(body: Any, topic: str = f"v2.users.{AGENT}.presence") -> str:
    return json.dumps({"topicName": topic, "eventBody": body})


def test_presence_guide_example_uses_arrival_time_without_modified_date() -> None:
    """The official presence example decodes; without modifiedDate the event time is arrival."""
    message = decode(PRESENCE_GUIDE, RECEIVED)
    assert message == Updates(
        topic=f"v2.users.{AGENT}.presence",
        correlation_id="290034f4-c3d7-46fd-8342-ee5bc859b7e9",
        updates=(Update(AGENT, Kind.PRESENCE, "AVAILABLE", RECEIVED, AVAILABLE_ID),),
    )


def test_presence_event_time_is_modified_date() -> None:
    """A presence update's event time is its modifiedDate, to the millisecond."""
    message = decode(PRESENCE_DATED, RECEIVED)
    assert isinstance(message, Updates)
    (update,) = message.updates
    assert update.value == Presence.ON_QUEUE
    assert update.event_ms == ms("2024-05-14T09:03:17.067+00:00")


def test_routing_status_example() -> None:
    """A routingStatus frame gives a routing update timed by startTime, without definition."""
    message = decode(ROUTING, RECEIVED)
    assert message == Updates(
        topic=f"v2.users.{OTHER}.routingStatus",
        correlation_id="9e8067c7-1111-4222-8333-444455556666",
        updates=(Update(OTHER, Kind.ROUTING, "IDLE", ms("2024-05-14T09:03:17.067+00:00")),),
    )


def test_activity_gives_presence_and_routing() -> None:
    """The activity topic yields both updates, each with its own event time."""
    message = decode(ACTIVITY, RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates == (
        Update(
            OTHER, Kind.PRESENCE, "AVAILABLE", ms("2021-05-14T09:03:17.047+00:00"), AVAILABLE_ID
        ),
        Update(OTHER, Kind.ROUTING, "OFF_QUEUE", ms("2021-05-14T09:03:17.067+00:00")),
    )


def test_activity_with_one_part_keeps_that_part() -> None:
    """An activity frame cut to its presence (as the published sample is) still yields it."""
    frame = json.loads(ACTIVITY)
    del frame["eventBody"]["routingStatus"]
    message = decode(json.dumps(frame), RECEIVED)
    assert isinstance(message, Updates)
    assert [u.kind for u in message.updates] == [Kind.PRESENCE]


def test_activity_without_either_part_is_an_error() -> None:
    """An activity frame with neither presence nor routingStatus is refused."""
    frame = json.loads(ACTIVITY)
    del frame["eventBody"]["routingStatus"]
    del frame["eventBody"]["presence"]
    with pytest.raises(DecodeError, match="without presence or routingStatus"):
        decode(json.dumps(frame), RECEIVED)


def test_heartbeat_and_pong() -> None:
    """channel.metadata is a pong when its message is "pong" in any case, else a heartbeat."""
    assert decode(HEARTBEAT, RECEIVED) == Heartbeat("WebSocket Heartbeat")
    assert decode(PONG, RECEIVED) == Pong()
    assert decode(PONG.replace('"pong"', '"PONG"'), RECEIVED) == Pong()
    assert decode('{"topicName":"Channel.Metadata"}', RECEIVED) == Heartbeat("")


def test_socket_closing() -> None:
    """v2.system.socket_closing is recognised, whatever the case of the topic."""
    assert decode(SOCKET_CLOSING, RECEIVED) == SocketClosing("Socket closing in 1 minute")
    assert decode('{"topicName":"V2.SYSTEM.SOCKET_CLOSING"}', RECEIVED) == SocketClosing("")


def test_other_system_messages_keep_their_fields() -> None:
    """Other v2.system.* frames keep topic, systemTopicType, reason and message."""
    frame = json.dumps(
        {
            "topicName": f"v2.system.token_revoked.{AGENT}",
            "eventBody": {
                "systemTopicType": "token_revoked",
                "reason": "user_tokens_revoked",
                "message": "revoked",
                "channelId": "streaming-0-abc",
            },
        }
    )
    assert decode(frame, RECEIVED) == SystemMessage(
        f"v2.system.token_revoked.{AGENT}", "token_revoked", "user_tokens_revoked", "revoked"
    )


def test_bare_result_means_channel_gone() -> None:
    """A bare non-2xx result (evicted or expired channel) is ChannelGone; a 2xx ack is ignored."""
    assert decode('{"result":"404"}', RECEIVED) == ChannelGone("404")
    assert decode('{"result":404}', RECEIVED) == ChannelGone("404")
    assert decode('{"result":"200","status":"subscribed"}', RECEIVED) == Ignored("")


def test_topics_we_do_not_handle_are_ignored() -> None:
    """Well-formed frames for other topics are Ignored, not errors."""
    conversations = json.dumps(
        {"topicName": f"v2.users.{AGENT}.conversations", "eventBody": {"id": "x"}}
    )
    assert decode(conversations, RECEIVED) == Ignored(f"v2.users.{AGENT}.conversations")
    queues = '{"topicName":"v2.routing.queues.q1.users","eventBody":{}}'
    assert decode(queues, RECEIVED) == Ignored("v2.routing.queues.q1.users")


def test_topic_matching_is_case_insensitive_and_agent_ids_lower_cased() -> None:
    """Topic case does not matter, and the agent id comes back lower-cased."""
    topic = f"V2.USERS.{OTHER.upper()}.ROUTINGSTATUS"
    frame = json.loads(ROUTING)
    frame["topicName"] = topic
    message = decode(json.dumps(frame), RECEIVED)
    assert isinstance(message, Updates)
    assert message.topic == topic
    assert message.updates[0].agent_id == OTHER


def test_other_spellings_of_statuses_are_normalised() -> None:
    """REST-style spellings are normalised; an unknown but well-formed status is kept."""
    body = {"presenceDefinition": {"id": AVAILABLE_ID, "systemPresence": "On Queue"}}
    message = decode(presence_frame(body), RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates[0].value == "ON_QUEUE"
    body = {"presenceDefinition": {"systemPresence": "FOCUS_TIME"}}
    message = decode(presence_frame(body), RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates[0].value == "FOCUS_TIME"
    assert message.updates[0].definition_id is None
    routing = ROUTING.replace('"IDLE"', '"NotResponding"')
    message = decode(routing, RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates[0].value == RoutingStatus.NOT_RESPONDING


def test_empty_definition_id_is_none() -> None:
    """An empty presenceDefinition.id is the same as a missing one."""
    body = {"presenceDefinition": {"id": "", "systemPresence": "BREAK"}}
    message = decode(presence_frame(body), RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates[0].definition_id is None


def test_bytes_are_accepted() -> None:
    """A frame delivered as bytes decodes like the same text."""
    assert decode(ROUTING.encode(), RECEIVED) == decode(ROUTING, RECEIVED)


def test_null_timestamp_is_arrival_time() -> None:
    """A null startTime counts as absent: the event time is the arrival time."""
    frame = ROUTING.replace('"2024-05-14T09:03:17.067Z"', "null")
    message = decode(frame, RECEIVED)
    assert isinstance(message, Updates)
    assert message.updates[0].event_ms == RECEIVED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-14T09:03:17.067Z", "2024-05-14T09:03:17.067+00:00"),
        ("2024-05-14T09:03:17Z", "2024-05-14T09:03:17+00:00"),
        ("2024-05-14T11:03:17.067+02:00", "2024-05-14T09:03:17.067+00:00"),
        ("2024-05-14T04:03:17.5-05:00", "2024-05-14T09:03:17.5+00:00"),
        ("2024-05-14T09:03:17.067", "2024-05-14T09:03:17.067+00:00"),
        ("2024-05-14 09:03:17.0679Z", "2024-05-14T09:03:17.067+00:00"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999+00:00"),
    ],
)
def test_timestamp_forms(text: str, expected: str) -> None:
    """ISO-8601 with or without ms, Z or offset, or no zone (UTC) parse to exact epoch ms."""
    assert parse_timestamp(text) == ms(expected)


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2024-05-14", "2024-13-01T00:00:00Z", "2024-05-14T25:00:00Z", "T" * 20],
)
def test_bad_timestamps(text: str) -> None:
    """A string that is not an ISO-8601 date-time is a DecodeError."""
    with pytest.raises(DecodeError, match="bad timestamp"):
        parse_timestamp(text)


def _broken(path: tuple[str, ...], value: Any) -> str:
    frame = json.loads(PRESENCE_DATED)
    target = frame
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(frame)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"text"', "not a JSON object"),
        ("{}", "neither topicName nor result"),
        ('{"topicName": 5}', "topicName is not a string"),
        ('{"result": [404]}', "result is not a string"),
        (_broken(("eventBody",), KeyError), "missing eventBody"),
        (_broken(("eventBody",), [1]), "eventBody is not an object"),
        (_broken(("eventBody", "presenceDefinition"), KeyError), "missing presenceDefinition"),
        (_broken(("eventBody", "presenceDefinition", "systemPresence"), KeyError), "not a string"),
        (_broken(("eventBody", "presenceDefinition", "systemPresence"), 3), "not a string"),
        (_broken(("eventBody", "presenceDefinition", "systemPresence"), "!!"), "not a status"),
        (_broken(("eventBody", "presenceDefinition", "id"), 17), "id is not a string"),
        (_broken(("eventBody", "modifiedDate"), 1715677397067), "not a string"),
        (_broken(("eventBody", "modifiedDate"), "soon"), "bad timestamp"),
        (_broken(("topicName",), "v2.users.not-a-uuid.presence"), "not a UUID"),
        (_broken(("topicName",), f"v2.users.{AGENT}.x.presence"), "not a UUID"),
        ('{"topicName":"channel.metadata","eventBody":"hi"}', "eventBody is not an object"),
        ('{"topicName":"channel.metadata","eventBody":{"message":1}}', "message is not a string"),
        ('{"topicName":"v2.system.x","eventBody":{"reason":[]}}', "reason is not a string"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_malformed_frames_raise_decode_error(text: str, reason: str) -> None:
    """Every malformation is a DecodeError with a short reason naming the problem."""
    with pytest.raises(DecodeError, match=reason) as caught:
        decode(text, RECEIVED)
    assert len(str(caught.value)) < 200


def test_routing_without_routing_status_is_an_error() -> None:
    """A routingStatus frame without its routingStatus object is refused."""
    frame = json.loads(ROUTING)
    frame["eventBody"]["routingStatus"] = "IDLE"
    with pytest.raises(DecodeError, match="routingStatus is not an object"):
        decode(json.dumps(frame), RECEIVED)


def test_invalid_utf8_bytes_are_an_error() -> None:
    """Bytes that are not valid text are a DecodeError, not a UnicodeDecodeError."""
    with pytest.raises(DecodeError):
        decode(b'{"topicName":"\xff\xfe\xfa"}', RECEIVED)


def test_encode_ping() -> None:
    """The ping frame is exactly what the official SDK sends."""
    assert encode_ping() == '{"message":"ping"}'


# --- properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
topic_names = st.sampled_from(
    [
        f"v2.users.{AGENT}.presence",
        f"v2.users.{AGENT}.routingStatus",
        f"V2.users.{AGENT}.ACTIVITY",
        "v2.users.x.presence",
        "channel.metadata",
        "v2.system.socket_closing",
        "v2.system.token_revoked.1",
        "v2.routing.queues.1",
    ]
) | st.text(max_size=40)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON object (dict keys and list indices)."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, dict | list):
            found.extend(_paths(child, (*prefix, key)))
    return found


VALID_FRAMES = [json.loads(f) for f in (PRESENCE_DATED, ROUTING, ACTIVITY, SOCKET_CLOSING, PONG)]


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A real frame, perhaps under another topic, with fields deleted or replaced by any JSON."""
    frame: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(VALID_FRAMES))))
    if draw(st.booleans()):
        frame["topicName"] = draw(topic_names)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(frame)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = frame
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return frame


MESSAGE_TYPES = (Heartbeat, Pong, SocketClosing, SystemMessage, ChannelGone, Updates, Ignored)


def _decodes_or_refuses(text: str | bytes) -> Message | None:
    try:
        return decode(text, RECEIVED)
    except DecodeError:
        return None


@settings(max_examples=200)
@given(json_values)
def test_arbitrary_json_never_escapes_decode_error(value: Any) -> None:
    """Any JSON value decodes to a message or raises DecodeError; nothing else escapes."""
    result = _decodes_or_refuses(json.dumps(value))
    assert result is None or isinstance(result, MESSAGE_TYPES)


@settings(max_examples=300)
@given(mutated_frames())
def test_mutated_real_frames_never_escape_decode_error(frame: dict[str, Any]) -> None:
    """Real frames with fields deleted or replaced decode or raise DecodeError, nothing else."""
    result = _decodes_or_refuses(json.dumps(frame))
    assert result is None or isinstance(result, MESSAGE_TYPES)
    if isinstance(result, Updates):
        assert result.updates
        assert all(isinstance(u.event_ms, int) and u.value for u in result.updates)


@settings(max_examples=300)
@given(st.text() | st.binary() | json_values.map(lambda v: f" {json.dumps(v)}\n"))
def test_arbitrary_text_never_escapes_decode_error(text: str | bytes) -> None:
    """Arbitrary text or bytes decode or raise DecodeError; what json refuses, decode refuses."""
    result = _decodes_or_refuses(text)
    assert result is None or isinstance(result, MESSAGE_TYPES)
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        assert result is None


def test_whitespace_around_a_frame_is_fine_but_trailing_data_is_not() -> None:
    """JSON whitespace around a frame is accepted; anything after the object is refused."""
    assert decode(f" \n{HEARTBEAT}\r\n ", RECEIVED) == Heartbeat("WebSocket Heartbeat")
    with pytest.raises(DecodeError, match="not JSON"):
        decode(f"{HEARTBEAT} x", RECEIVED)
    with pytest.raises(DecodeError, match="not JSON"):
        decode(f"{HEARTBEAT}{HEARTBEAT}", RECEIVED)


@given(
    agent=st.uuids().map(str),
    presence=st.sampled_from(list(Presence)),
    definition=st.uuids().map(str),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_valid_presence_frames_round_trip(
    agent: str, presence: Presence, definition: str, moment: datetime
) -> None:
    """A well-formed presence frame decodes to exactly the update it describes."""
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {
        "presenceDefinition": {"id": definition, "systemPresence": presence.value},
        "modifiedDate": stamp,
    }
    message = decode(presence_frame(body, f"v2.users.{agent}.presence"), RECEIVED)
    expected_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert message == Updates(
        f"v2.users.{agent}.presence",
        None,
        (Update(agent, Kind.PRESENCE, presence.value, expected_ms, definition),),
    )


def test_frames_of_one_agent_share_its_id_and_definition_strings() -> None:
    """Every frame of an agent yields the same id and definition id objects, not a copy each:
    the tracker and the metrics keep them for as long as the agent is watched."""
    first, second = decode(PRESENCE_DATED, RECEIVED), decode(PRESENCE_DATED.encode(), RECEIVED)
    assert isinstance(first, Updates)
    assert isinstance(second, Updates)
    assert first.updates[0].agent_id is second.updates[0].agent_id
    assert first.updates[0].definition_id is second.updates[0].definition_id
