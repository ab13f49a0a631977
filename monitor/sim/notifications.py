"""The simulator's notification service: channels and subscriptions over REST, events over
websockets (GENESYS.md sections 1, 2 and 7).

`Notifications` composes the channel registry (`channels.py`), the websocket server
(`streaming.py`) and the frame builders (`frames.py`). It listens to the org, and turns each change
into frames for the sockets subscribed to that agent; frames for channels without a connected
socket are lost, because Genesys does not queue them either. It listens to the tokens too: a
channel dies with the token that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from monitor.clock import ScaledClock
from monitor.core.model import Kind
from monitor.httpserver import HttpError, Request, Response, Router
from monitor.sim import frames
from monitor.sim.channels import Channels, SimChannel
from monitor.sim.faults import Faults
from monitor.sim.http import require_token
from monitor.sim.org import Change, Org
from monitor.sim.settings import SimSettings
from monitor.sim.streaming import Socket, StreamingServer, StreamSettings
from monitor.sim.subscriptions import SubscriptionsApi
from monitor.sim.tokens import Token, Tokens

_CHANNELS = "/api/v2/notifications/channels"
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class Notifications:
    """Genesys's notification service for one simulated org."""

    def __init__(
        self,
        settings: SimSettings,
        org: Org,
        clock: ScaledClock,
        tokens: Tokens,
        faults: Faults,
    ) -> None:
        self._settings = settings
        self._org = org
        self._clock = clock
        self._tokens = tokens
        self._faults = faults
        self._rng = random.Random(f"notifications-{settings.seed}")
        self._expiry_changed = asyncio.Event()
        self.channels = Channels(settings, clock, self._rng, self._expiry_changed.set)
        # Seq numbers of org.truth changes sent to at least one socket.
        self.delivered: set[int] = set()
        self._stream = StreamSettings(
            clock=clock,
            faults=faults,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            heartbeat_frame=frames.heartbeat(settings.heartbeat_message),
            pong_frame=frames.pong(settings.pong_message),
            delivered=self.delivered,
        )
        # How many frame faults were injected, by kind (duplicate, reorder, malformed).
        self.injected = self._stream.injected
        self._server = StreamingServer(
            self._stream,
            exists=lambda channel_id: self.channels.get(channel_id) is not None,
            attach=self.channels.attach,
            detach=self.channels.detach,
        )
        self._subscriptions = SubscriptionsApi(settings, self.channels, tokens)
        # Out-of-office and queue activation are not simulated: they last changed "at start".
        self._epoch_ms = clock.now_ms()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._unlisten = org.listen(self._on_change)
        tokens.on_death(self._on_token_death)

    # --- life -----------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Start the websocket server and the expiry timer; returns the websocket port."""
        bound = await self._server.start(host, port)
        self._reaper = asyncio.get_running_loop().create_task(
            self._reap(), name="notifications-expiry"
        )
        return bound

    async def close(self) -> None:
        """Stop listening, close every socket and the server, and end every task."""
        if self._closed:
            return
        self._closed = True
        self._unlisten()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._server.close()

    async def _reap(self) -> None:
        # One timer for every channel: sleep until the earliest expiry, or until an expiry moves
        # (a new channel, a resubscription), then remove what is due.
        while True:
            self._expiry_changed.clear()
            self.channels.expire_due()
            next_ms = self.channels.next_expiry_ms()
            # One millisecond past the expiry, so the integer clock has surely reached it.
            wait = (
                None if next_ms is None else max(0.0, (next_ms - self._clock.now_ms() + 1) / 1000)
            )
            with contextlib.suppress(TimeoutError):
                async with self._clock.timeout(wait):
                    await self._expiry_changed.wait()

    # --- REST -----------------------------------------------------------------------------------

    def add_routes(self, router: Router) -> None:
        router.add("POST", _CHANNELS, self._create_channel)
        router.add("GET", _CHANNELS, self._list_channels)
        router.add("HEAD", _CHANNELS + "/{channel_id}", self._head_channel)
        self._subscriptions.add_routes(router, _CHANNELS + "/{channel_id}/subscriptions")

    async def _create_channel(self, request: Request) -> Response:
        token = require_token(request, self._tokens)
        connect_host = self._connect_host(request)
        channel, _evicted = self.channels.create(token)
        return Response.json(self._channel_json(channel, connect_host))

    async def _list_channels(self, request: Request) -> Response:
        token = require_token(request, self._tokens)
        mode = (request.arg("includechannels") or "token").lower()
        if mode not in ("token", "oauthclient"):
            raise HttpError(
                400, "includechannels must be one of: token, oauthclient", code="bad.request"
            )
        connect_host = self._connect_host(request)
        entities = []
        for channel in self.channels.of_client(token.client_id):
            if channel.token == token.value:
                entities.append(self._channel_json(channel, connect_host))
            elif mode == "oauthclient":
                # Channels of the client's other tokens are listed without their ids.
                entities.append({"expires": frames.iso_ms(channel.expires_ms)})
        return Response.json({"entities": entities})

    async def _head_channel(self, request: Request) -> Response:
        token = require_token(request, self._tokens)
        if self.channels.owned(request.params["channel_id"], token.client_id) is None:
            raise HttpError(404, "channel not found", code="not.found")
        return Response(200)

    def _connect_host(self, request: Request) -> str:
        if not self._server.port:
            raise HttpError(503, "the notification service is not started")
        host = self._server.host
        if host in _WILDCARD_HOSTS:
            # Bound to every interface: the client reaches it the way it reached the REST API.
            host = request.headers.get("host", "127.0.0.1").rpartition(":")[0] or "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{host}:{self._server.port}"

    @staticmethod
    def _channel_json(channel: SimChannel, connect_host: str) -> dict[str, str]:
        return {
            "connectUri": f"ws://{connect_host}/channels/{channel.id}",
            "id": channel.id,
            "expires": frames.iso_ms(channel.expires_ms),
        }

    # --- events ---------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        subscribed = self.channels.index.get(change.agent_id)
        if not subscribed:
            return
        is_presence = change.kind is Kind.PRESENCE
        # Bodies and envelopes are built lazily, once per change and topic name, however many
        # channels receive them.
        body: str | None = None
        activity: str | None = None
        built: dict[str, str] = {}
        for channel in subscribed.values():
            socket = channel.socket
            if socket is None or socket.closing:
                continue
            route = channel.routes[change.agent_id]
            for name in route.presence if is_presence else route.routing:
                frame = built.get(name)
                if frame is None:
                    if body is None:
                        body = self._body(change, is_presence)
                    frame = built[name] = frames.event(name, body, frames.correlation_id(self._rng))
                socket.push_event(frame, change.seq)
            for name in route.activity:
                frame = built.get(name)
                if frame is None:
                    if activity is None:
                        activity = self._activity_body(change.agent_id)
                    frame = built[name] = frames.event(
                        name, activity, frames.correlation_id(self._rng)
                    )
                socket.push_event(frame, change.seq)

    def _body(self, change: Change, is_presence: bool) -> str:
        if is_presence:
            agent = self._org.agents[change.agent_id]
            return frames.presence_body(
                change.definition_id or agent.presence_definition_id,
                change.value,
                agent.presence_message,
                change.event_ms,
            )
        return frames.routing_body(change.agent_id, change.value, change.event_ms)

    def _activity_body(self, agent_id: str) -> str:
        # The activity topic carries the whole state as it is right after the change.
        org = self._org
        agent = org.agents[agent_id]
        return frames.activity_body(
            agent_id,
            status=agent.routing_status.value,
            start_ms=agent.routing_start_ms,
            definition_id=agent.presence_definition_id,
            system_presence=org.presence_of(agent).value,
            message=agent.presence_message,
            modified_ms=agent.presence_modified_ms,
            queue_ids=agent.queue_ids,
            unchanged_since_ms=self._epoch_ms,
        )

    def _on_token_death(self, token: Token, reason: str) -> None:
        if self._closed or not self._settings.channels_die_with_token:
            return
        for channel in self.channels.all():
            if channel.token == token.value:
                self.channels.remove(channel, f"token {reason}")

    # --- fault actions --------------------------------------------------------------------------

    def _targets(self, channel_id: str | None) -> list[SimChannel]:
        if channel_id is None:
            return self.channels.all()
        channel = self.channels.get(channel_id)
        return [] if channel is None else [channel]

    def _connected(self, channel_id: str | None) -> list[tuple[SimChannel, Socket]]:
        return [
            (c, c.socket)
            for c in self._targets(channel_id)
            if c.socket is not None and not c.socket.closing
        ]

    def drop_socket(self, channel_id: str) -> bool:
        """Drop a channel's socket without a close frame; False when none is connected."""
        connected = self._connected(channel_id)
        for channel, socket in connected:
            channel.socket = None
            socket.abort()
        return bool(connected)

    def drop_all_sockets(self) -> int:
        """Drop every connected socket without a close frame; returns how many."""
        connected = self._connected(None)
        for channel, socket in connected:
            channel.socket = None
            socket.abort()
        return len(connected)

    def send_socket_closing(self, channel_id: str | None = None) -> int:
        """Send `v2.system.socket_closing`, and close after the grace period; returns how many."""
        connected = self._connected(channel_id)
        for channel, socket in connected:
            socket.push(frames.socket_closing(channel.id, frames.correlation_id(self._rng)))
            socket.finish_after(self._settings.socket_closing_grace_s, reason="socket closing")
        return len(connected)

    def expire_channel(self, channel_id: str | None = None) -> int:
        """Expire channels now (every channel when None); returns how many."""
        removed = [
            c for c in self._targets(channel_id) if self.channels.remove(c, "channel expired")
        ]
        return len(removed)

    @property
    def ws_port(self) -> int:
        """The websocket server's port; 0 until started."""
        return self._server.port

    def channel_ids(self) -> list[str]:
        return [c.id for c in self.channels.all()]

    def backlog(self) -> int:
        """Frames queued on sockets and not yet sent."""
        return sum(c.socket.backlog for c in self.channels.all() if c.socket is not None)
