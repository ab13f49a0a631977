"""The simulator's notification websockets: the server, and the sending side of each socket.

Every connected socket owns one outgoing queue drained by one sender task, so pushing a frame is
a deque append (the org calls its listeners synchronously, for every change, and must not wait),
and frame order on a socket is the order frames were pushed. Heartbeats, pongs, notices and the
request to close all travel through the same queue, so a close never overtakes a frame queued
before it. The frame faults (delay, duplicates, reordering, malformed frames) are applied by the
sender, reading the `Faults` state live for every frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.http11 import Response as WsResponse

from monitor.clock import Clock
from monitor.sim import frames
from monitor.sim.faults import Faults

_EVENT, _PLAIN, _CLOSE = 0, 1, 2
_PATH_PREFIX = "/channels/"
_BATCH = 1000  # frames per write at most
# (due on the clock's monotonic time or 0.0 for "now", kind, frame, change seq or -1)
_Item = tuple[float, int, str, int]


@dataclass(slots=True)
class StreamSettings:
    """What every socket shares: time, faults, the fixed frames, and the delivery record."""

    clock: Clock
    faults: Faults
    heartbeat_interval_s: float
    heartbeat_frame: str
    pong_frame: str
    delivered: set[int]
    injected: dict[str, int] = field(
        default_factory=lambda: {"duplicate": 0, "reorder": 0, "malformed": 0}
    )


class Socket:
    """One connected websocket of a channel."""

    def __init__(self, connection: ServerConnection, channel_id: str, shared: StreamSettings):
        self.connection = connection
        self.channel_id = channel_id
        self._shared = shared
        self._items: deque[_Item] = deque()
        self._ready = asyncio.Event()
        self._timers: set[asyncio.Task[None]] = set()
        self._close_reason = ""
        # Set once the socket is on its way out; nothing more is queued after that.
        self.closing = False

    @property
    def backlog(self) -> int:
        return len(self._items)

    # --- pushing (synchronous, from any caller on the loop) --------------------------------------

    def push_event(self, frame: str, seq: int) -> None:
        """Queue an event frame for change `seq` of the org's ground truth."""
        if self.closing:
            return
        delay = self._shared.faults.frame_delay_s
        due = self._shared.clock.monotonic() + delay if delay > 0 else 0.0
        self._items.append((due, _EVENT, frame, seq))
        self._ready.set()

    def push(self, frame: str) -> None:
        """Queue a frame that is not an event (heartbeat, pong, notice): no frame faults but delay."""
        if not self.closing:
            self._append(_PLAIN, frame)

    def finish(self, notice: str | None = None, *, reason: str = "") -> None:
        """Send what is queued, then `notice` (if any), then close the socket normally."""
        if self.closing:
            return
        self._close_reason = reason
        self._append(_CLOSE, notice or "")
        self.closing = True

    def finish_after(self, seconds: float, *, reason: str) -> None:
        """Close normally after `seconds` of simulated time, unless the socket is gone by then."""
        if self.closing:
            return

        async def later() -> None:
            await self._shared.clock.sleep(seconds)
            self.finish(reason=reason)

        timer = asyncio.get_running_loop().create_task(
            later(), name=f"socket-close-{self.channel_id}"
        )
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    def abort(self) -> None:
        """Drop the connection without a close frame, as a network failure would."""
        self.closing = True
        self._items.clear()
        self.connection.transport.abort()

    def _append(self, kind: int, frame: str) -> None:
        delay = self._shared.faults.frame_delay_s
        due = self._shared.clock.monotonic() + delay if delay > 0 else 0.0
        self._items.append((due, kind, frame, -1))
        self._ready.set()

    # --- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the socket until it closes: send the queue, beat, and answer pings."""
        name = self.channel_id
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._send_loop(), name=f"socket-send-{name}")
        beat = loop.create_task(self._heartbeat_loop(), name=f"socket-heartbeat-{name}")
        try:
            async for message in self.connection:
                # A server that stopped beating is as good as dead: it answers no ping either.
                # Every other client frame is ignored, as Genesys does.
                if (
                    isinstance(message, str)
                    and _is_ping(message)
                    and not self._shared.faults.heartbeats_stopped
                ):
                    self.push(self._shared.pong_frame)
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
            tasks = [sender, beat, *self._timers]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat_loop(self) -> None:
        shared = self._shared
        while True:
            await shared.clock.sleep(shared.heartbeat_interval_s)
            if not shared.faults.heartbeats_stopped:
                self.push(shared.heartbeat_frame)

    async def _send_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._drain()

    async def _drain(self) -> None:
        shared = self._shared
        clock, faults, items, ready = shared.clock, shared.faults, self._items, self._ready
        held: tuple[str, int] | None = None  # an event frame held back by the reorder fault
        while True:
            if not items:
                ready.clear()
                await ready.wait()
                continue
            # Everything due goes out in one write: on loopback the system call per write, not
            # the framing, is what limits the frame rate.
            out: list[str] = []
            seqs: list[int] = []
            close: str | None = None
            while items and len(out) < _BATCH:
                due = items[0][0]
                if due:
                    wait = due - clock.monotonic()
                    if wait > 0:
                        if out:
                            break
                        await clock.sleep(wait)
                        continue
                _, kind, frame, seq = items.popleft()
                if kind == _EVENT:
                    if held is None and faults.chance(faults.reorder_rate):
                        shared.injected["reorder"] += 1
                        held = (frame, seq)
                        continue
                    self._add_event(out, seqs, frame, seq)
                elif kind == _PLAIN:
                    out.append(frame)
                else:
                    close = frame
                    break
                if held is not None:
                    # The frame after the held one is out; now the held one follows it.
                    self._add_event(out, seqs, *held)
                    held = None
            if close is not None and held is not None:
                # A held frame is still owed to the client: it goes out before the socket closes.
                self._add_event(out, seqs, *held)
                held = None
            if close:
                out.append(close)
            if out:
                await self._write(out)
                shared.delivered.update(seqs)
            if close is not None:
                await self.connection.close(1000, self._close_reason)
                return

    def _add_event(self, out: list[str], seqs: list[int], frame: str, seq: int) -> None:
        shared = self._shared
        faults = shared.faults
        if faults.chance(faults.malformed_rate):
            shared.injected["malformed"] += 1
            out.append(frames.malformed(frame, faults.rng))
        out.append(frame)
        if seq >= 0:
            seqs.append(seq)
        if faults.chance(faults.duplicate_rate):
            shared.injected["duplicate"] += 1
            out.append(frame)

    async def _write(self, out: list[str]) -> None:
        # send_context() is websockets' hook for writing frames through its protocol directly: it
        # checks that the connection is open, and drains once for the whole batch. On its own it
        # would still hand the transport one write (one system call) per frame, so the frames
        # are joined into one write here. On an open connection send_text() queues frame bytes
        # only, never the end-of-stream marker that send_data() would have to act on.
        connection = self.connection
        protocol = connection.protocol
        send_text = protocol.send_text
        async with connection.send_context():
            for frame in out:
                send_text(frame.encode())
            connection.transport.write(b"".join(protocol.data_to_send()))


def _is_ping(message: str) -> bool:
    # Cheap test first: most client frames (if any) are pings, and json.loads is the cost.
    if "ping" not in message:
        return False
    try:
        data = json.loads(message)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("message") == "ping"


def channel_id_of(path: str) -> str | None:
    """The channel id of a websocket request path `/channels/<id>`; None for any other path."""
    if not path.startswith(_PATH_PREFIX):
        return None
    channel_id = path[len(_PATH_PREFIX) :].partition("?")[0]
    return channel_id if channel_id and "/" not in channel_id else None


class StreamingServer:
    """The websocket server: one socket per channel at `/channels/<id>`.

    `exists(channel_id)` decides whether a path may connect (unknown channels get an HTTP 404
    before the handshake); `attach` hands a new socket to its channel (False: the channel vanished
    during the handshake); `detach` tells the channel its socket is gone.
    """

    def __init__(
        self,
        shared: StreamSettings,
        *,
        exists: Callable[[str], bool],
        attach: Callable[[str, Socket], bool],
        detach: Callable[[str, Socket], None],
    ) -> None:
        self._shared = shared
        self._exists = exists
        self._attach = attach
        self._detach = detach
        self._server: Server | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        # No compression and no protocol-level keepalive: Genesys keeps sockets alive with its own
        # JSON heartbeats, and deflating every small frame would dominate the cost of sending.
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=2,
        )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])
        return self.port

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._server = None

    def _process_request(self, connection: ServerConnection, request: Request) -> WsResponse | None:
        channel_id = channel_id_of(request.path)
        if channel_id is None or not self._exists(channel_id):
            return connection.respond(HTTPStatus.NOT_FOUND, f"no channel at {request.path}\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        channel_id = channel_id_of(connection.request.path if connection.request else "")
        if channel_id is None:
            return
        socket = Socket(connection, channel_id, self._shared)
        if not self._attach(channel_id, socket):
            await connection.close(1000, "channel removed")
            return
        try:
            await socket.run()
        finally:
            self._detach(channel_id, socket)
