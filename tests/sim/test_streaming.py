"""The simulator's notification websockets: events, heartbeats, pings, and socket life."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from monitor.core.model import Presence
from tests.sim.notifications_harness import (
    events,
    is_event,
    next_matching,
    recv_json,
    running_sim,
)
from tests.support import eventually, scaled


async def test_unknown_channel_paths_are_refused_with_404() -> None:
    """The websocket handshake for an unknown channel or path is refused with HTTP 404."""
    async with running_sim() as sim:
        port = sim.notifications.ws_port
        statuses = []
        for path in ("/channels/streaming-1-" + "x" * 26, "/elsewhere", "/channels/"):
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"ws://127.0.0.1:{port}{path}")
            statuses.append(refused.value.response.status_code)
    assert statuses == [404, 404, 404]


async def test_events_reach_subscribed_sockets_only() -> None:
    """A routing change reaches the socket subscribed to that agent, under the subscribed name."""
    async with running_sim() as sim:
        watched, ignored = sim.agent_ids()[:2]
        name = f"v2.users.{watched}.ROUTINGSTATUS"
        _, ws = await sim.connected_channel([name])
        sim.put_on_queue(ignored)
        sim.toggle_routing(ignored)
        sim.put_on_queue(watched)  # presence ON_QUEUE (not subscribed), then routing IDLE
        (frame,) = await events(ws, 1)
        await ws.close()
    assert frame["topicName"] == name
    assert frame["version"] == "2"
    assert frame["eventBody"]["id"] == watched
    assert frame["eventBody"]["routingStatus"]["status"] == "IDLE"
    assert frame["metadata"]["CorrelationId"]


async def test_combined_topics_deliver_under_individual_names() -> None:
    """A combined subscription delivers presence and routing events under the individual names."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        prefix = f"v2.users.{agent.upper()}"
        _, ws = await sim.connected_channel([f"{prefix}?Presence&routingStatus"])
        sim.put_on_queue(agent)
        presence, routing = await events(ws, 2)
        await ws.close()
    assert presence["topicName"] == f"{prefix}.Presence"
    assert presence["eventBody"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
    assert routing["topicName"] == f"{prefix}.routingStatus"
    assert routing["eventBody"]["routingStatus"]["status"] == "IDLE"


async def test_activity_topic_carries_the_whole_state() -> None:
    """The activity topic reports presence and routing status together after each change."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        _, ws = await sim.connected_channel([f"v2.users.{agent}.activity"])
        sim.put_on_queue(agent)
        on_queue, idle = await events(ws, 2)
        await ws.close()
    assert on_queue["eventBody"]["presence"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
    assert on_queue["eventBody"]["routingStatus"]["status"] == "OFF_QUEUE"
    assert idle["eventBody"]["routingStatus"]["status"] == "IDLE"
    assert idle["eventBody"]["activeQueueIds"] == sim.org.agent(agent).queue_ids


async def test_events_while_disconnected_are_lost() -> None:
    """Genesys does not queue: changes made while no socket is connected never arrive."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        channel = await sim.create_channel()
        await sim.subscribe(channel["id"], [f"v2.users.{agent}.routingStatus"])
        sim.put_on_queue(agent)  # routing IDLE, nobody connected
        missed = sim.toggle_routing(agent)  # INTERACTING, nobody connected
        ws = await sim.connect(channel)
        seen = sim.toggle_routing(agent)  # IDLE again, connected
        (frame,) = await events(ws, 1)
        await eventually(lambda: seen[0] in sim.notifications.delivered)
        await ws.close()
    assert frame["eventBody"]["routingStatus"]["status"] == "IDLE"
    assert missed[0] not in sim.notifications.delivered


async def test_heartbeats_arrive_and_can_be_stopped() -> None:
    """Heartbeats come every interval; while stopped, neither heartbeats nor pongs are sent."""
    async with running_sim(heartbeat_interval_s=0.05) as sim:
        _, ws = await sim.connected_channel([])
        beat = await recv_json(ws)
        sim.faults.heartbeats_stopped = True
        # A heartbeat queued just before the fault may still arrive; after it, silence.
        await ws.send(json.dumps({"message": "ping"}))
        silent = False
        try:
            while True:
                async with asyncio.timeout(scaled(0.5)):
                    await ws.recv()
        except TimeoutError:
            silent = True
        sim.faults.heartbeats_stopped = False
        resumed = await recv_json(ws)
        await ws.close()
    assert beat == {
        "topicName": "channel.metadata",
        "eventBody": {"message": "WebSocket Heartbeat"},
    }
    assert silent
    assert resumed == beat


async def test_ping_gets_a_pong_and_other_frames_are_ignored() -> None:
    """A {"message":"ping"} frame is answered with a pong; other client frames are ignored."""
    async with running_sim(pong_message="PONG!") as sim:
        _, ws = await sim.connected_channel([])
        for junk in ("hello", '{"message":"pong"}', '{"message":["ping"]}', b"\x00ping"):
            await ws.send(junk)
        await ws.send('{"message":"ping"}')
        pong = await next_matching(
            ws, lambda f: f.get("eventBody", {}).get("message") != "WebSocket Heartbeat"
        )
        await ws.close()
    assert pong == {"topicName": "channel.metadata", "eventBody": {"message": "PONG!"}}


async def test_a_second_socket_drops_the_first() -> None:
    """Connecting a second socket to a channel closes the first; events go to the second."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        channel, first = await sim.connected_channel([f"v2.users.{agent}.presence"])
        second = await connect(channel["connectUri"])
        await first.wait_closed()
        # The second socket was attached before the first was told to close.
        await sim.wait_attached(channel["id"])
        sim.put_on_queue(agent)
        (frame,) = await events(second, 1)
        await second.close()
    assert first.close_code == 1000
    assert frame["eventBody"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"


async def test_socket_closing_then_close_after_grace() -> None:
    """socket_closing is sent, and the socket is closed once the grace period has passed."""
    async with running_sim(socket_closing_grace_s=30, time_factor=100.0) as sim:
        channel, ws = await sim.connected_channel([])
        sent_at = sim.clock.now_ms()
        assert sim.notifications.send_socket_closing(channel["id"]) == 1
        notice = await next_matching(ws, lambda f: f["topicName"].startswith("v2.system"))
        await ws.wait_closed()
        closed_at = sim.clock.now_ms()
        still_there = await sim.head(channel["id"])
    assert notice["topicName"] == "v2.system.socket_closing"
    assert notice["eventBody"]["channelId"] == channel["id"]
    assert ws.close_code == 1000
    assert closed_at - sent_at >= 30_000
    assert still_there == 200


async def test_socket_closing_can_be_answered_with_a_new_socket() -> None:
    """After socket_closing, a new socket to the same channel replaces the old one at once."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        channel, old = await sim.connected_channel([f"v2.users.{agent}.presence"])
        assert sim.notifications.send_socket_closing() == 1
        await next_matching(old, lambda f: f["topicName"] == "v2.system.socket_closing")
        new = await connect(channel["connectUri"])
        await old.wait_closed()
        await sim.wait_attached(channel["id"])
        sim.put_on_queue(agent)
        (frame,) = await events(new, 1)
        await new.close()
    assert frame["topicName"] == f"v2.users.{agent}.presence"


async def test_drop_socket_is_abrupt() -> None:
    """drop_socket ends the connection without a close frame; the channel stays."""
    async with running_sim() as sim:
        channel, ws = await sim.connected_channel([])
        _, other = await sim.connected_channel([])
        assert sim.notifications.drop_socket(channel["id"]) is True
        assert sim.notifications.drop_socket(channel["id"]) is False
        await ws.wait_closed()
        assert sim.notifications.drop_all_sockets() == 1
        await other.wait_closed()
        head = await sim.head(channel["id"])
    # 1006: the connection ended without a close frame.
    assert (ws.close_code, other.close_code) == (1006, 1006)
    assert head == 200


async def test_close_leaves_no_tasks_behind() -> None:
    """close() ends every socket and task of the service."""
    async with running_sim(heartbeat_interval_s=0.05) as sim:
        _, ws = await sim.connected_channel([f"v2.users.{sim.agent_ids()[0]}.presence"])
        sim.notifications.send_socket_closing()
        await sim.notifications.close()
        await ws.wait_closed()
        names = {t.get_name() for t in asyncio.all_tasks()}
    assert ws.close_code == 1001
    assert not {n for n in names if n.startswith(("socket-", "notifications-"))}
    assert sim.org._listeners == []


async def test_presence_message_changes_are_delivered() -> None:
    """A presence update that only changes the message is delivered with the new message."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        _, ws = await sim.connected_channel([f"v2.users.{agent}.presence"])
        definition = sim.org.system_definition(Presence.OFFLINE).id
        sim.org.set_presence(agent, definition, cause="test", message='gone "fishing" \u2603')
        (frame,) = await events(ws, 1)
        await ws.close()
    assert frame["eventBody"]["message"] == 'gone "fishing" \u2603'
    assert is_event(frame)


async def test_client_may_leave_before_the_grace_period_ends() -> None:
    """A client that closes after socket_closing ends the socket and its grace timer at once."""
    async with running_sim(socket_closing_grace_s=3600) as sim:
        channel, ws = await sim.connected_channel([])
        _, other = await sim.connected_channel([])
        assert sim.notifications.send_socket_closing() == 2
        await next_matching(ws, lambda f: f["topicName"] == "v2.system.socket_closing")
        await ws.close()
        await eventually(
            lambda: not any(t.get_name().endswith(channel["id"]) for t in asyncio.all_tasks()),
            message="the socket's tasks ended",
        )
        detached = sim.notifications.channels.get(channel["id"])
        await other.close()
    assert detached is not None
    assert detached.socket is None
    assert ws.close_code == 1000
