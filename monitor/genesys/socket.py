"""One websocket to one notification channel.

The only module that imports websockets (client side); its exceptions are translated here: a
refused handshake with 404 means the channel is gone (NotFound), anything else is a
TransportError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

from monitor.clock import Clock
from monitor.core.wire import encode_ping
from monitor.errors import NotFound, TransportError

# Genesys documents no frame size limit; presence frames are well under a kilobyte, but a
# generous ceiling keeps a malformed giant frame from exhausting memory.
_MAX_FRAME = 4 * 1024 * 1024
# Frames received and not yet taken by the reader, above which the socket stops reading: the
# server (and TCP) then hold the rest, so a slow reader costs no unbounded memory.
_HIGH_WATER = 1024


class _Connection(ClientConnection):
    """websockets' client connection, with text messages collected in a list as they are parsed.

    The library hands messages out one `recv()` at a time, each through futures and an assembler
    queue, which costs more than decoding the frame. Here each message is appended to `texts` in
    the same callback that parsed it, and the reader takes whatever has arrived in one go
    (`Socket.batches`). Everything else (handshake, close, pings, size limits) is the library's.

    The frames that carry nearly every message, unfragmented text frames under 64 KiB, are also
    cut out of the received bytes here (`data_received`): the library's parser takes several
    generator steps per frame, as much again as decoding the frame's JSON. Any other frame goes
    to the library whole, so its parser only ever sees whole frames and stays at a frame boundary;
    whatever this cannot be sure of (the handshake, a fragmented message, a closing connection,
    a frame of 64 KiB or more, a masked one) goes to the library with everything received after
    it, until a read ends between two frames.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.texts: list[str | bytes] = []
        self.arrived = asyncio.Event()
        self.lost = False
        self._paused = False
        # The pieces of a fragmented text message; None outside one (or inside a binary one).
        self._fragments: list[bytes | bytearray | memoryview] | None = None
        # Received bytes that end in the middle of a frame, kept until the rest arrives.
        self._partial = b""
        self.direct = 0  # text frames cut out here rather than by the library (for the tests)

    def data_received(self, data: bytes) -> None:
        if self._partial:
            data, self._partial = self._partial + data, b""
        if self.response is None:
            # The library reads the handshake's response; the frames right behind it (a server
            # with events queued sends them at once) are kept from it, or its parser would hold
            # part of one and stay off a frame boundary for as long as reads end inside frames.
            end = data.find(b"\r\n\r\n") + 4
            if end < 4:
                super().data_received(data)
                return
            super().data_received(data[:end])
            data = data[end:]
            if not data:
                return
        if not self._at_boundary():
            super().data_received(data)
            return
        texts = self.texts
        size = len(data)
        position = 0
        taken = 0
        while position < size:
            if size - position < 2:
                end = size + 1  # the header is cut short
            elif (second := data[position + 1]) < 126:
                start = position + 2
                end = start + second
            elif second != 126:
                break  # a 64-bit length, or masked (a protocol error): the library decides
            elif size - position < 4:
                end = size + 1
            else:
                start = position + 4
                end = start + ((data[position + 2] << 8) | data[position + 3])
            if end > size:
                self._partial = data[position:]
                position = size
                break
            if data[position] == 0x81:  # FIN, no extension bits, text
                try:
                    texts.append(str(data[start:end], "utf-8"))
                except UnicodeDecodeError:
                    # Not UTF-8 after all: the frame decoder reports it as an invalid frame.
                    texts.append(data[start:end])
                taken += 1
            else:
                super().data_received(data[position:end])
                if not self._at_boundary():
                    position = end
                    break
            position = end
        if taken:
            self.direct += taken
            self._arrived(texts)
        if position < size:
            super().data_received(data[position:])

    def _at_boundary(self) -> bool:
        """Whether the library's parser waits for the first byte of a frame of an open
        connection, with no message in progress: only then may frames be cut out here."""
        protocol = self.protocol
        if (
            self.response is None
            or protocol.state is not State.OPEN
            or protocol.current_size is not None
            or protocol.reader.buffer
        ):
            return False
        # An empty buffer is not enough: the parser may have read a frame's first bytes and wait
        # for the rest. Between frames it waits in the stream's at_eof().
        waiting: Any = protocol.parser
        while (inner := getattr(waiting, "gi_yieldfrom", None)) is not None:
            waiting = inner
        return getattr(getattr(waiting, "gi_code", None), "co_name", None) == "at_eof"

    def process_event(self, event: Event) -> None:
        if (
            self.response is None
            or not isinstance(event, Frame)
            or event.opcode not in (Opcode.TEXT, Opcode.CONT, Opcode.BINARY)
        ):
            super().process_event(event)  # the handshake's response, pings, pongs, close
            return
        if event.opcode is Opcode.TEXT:
            if not event.fin:
                self._fragments = [event.data]
                return
            data = event.data
        elif event.opcode is Opcode.CONT:
            if self._fragments is None:
                return  # the rest of a binary message
            self._fragments.append(event.data)
            if not event.fin:
                return
            data, self._fragments = b"".join(self._fragments), None
        else:
            self._fragments = None  # binary messages are skipped
            return
        try:
            self.texts.append(str(data, "utf-8"))
        except UnicodeDecodeError:
            # Not UTF-8 after all: the frame decoder reports it as an invalid frame.
            self.texts.append(bytes(data))
        self._arrived(self.texts)

    def _arrived(self, texts: list[str | bytes]) -> None:
        self.arrived.set()
        if len(texts) >= _HIGH_WATER and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def take(self) -> list[str | bytes]:
        """Every message received since the last call, oldest first."""
        texts, self.texts = self.texts, []
        if self._paused and not self.lost:
            self._paused = False
            self.transport.resume_reading()
        return texts

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost = True
        self.arrived.set()


class Socket:
    """A connected websocket. `last_frame` is the clock's monotonic time of the last frame.

    Kept by the reader, for where a gap begins when the socket is lost: `lag_ms`, how far behind
    its events were at the last one; `through_ms`, the time (epoch ms) up to which it has handed
    on every event; `ended` and `ended_ms`, what ended the reading and when (None while it goes
    on)."""

    def __init__(self, connection: _Connection, uri: str, clock: Clock) -> None:
        self._connection = connection
        self.uri = uri
        self._clock = clock
        self.last_frame = clock.monotonic()
        self.opened = self.last_frame
        self.lag_ms = 0
        self.through_ms = clock.now_ms()
        self.ended: str | None = None
        self.ended_ms: int | None = None

    @classmethod
    async def open(cls, uri: str, clock: Clock, timeout_s: float) -> Socket:
        try:
            # Real time, not the clock's: how long a handshake may take is a property of the
            # network, however fast simulated time runs.
            async with asyncio.timeout(timeout_s):
                connection = await connect(
                    uri,
                    # Genesys keeps sockets alive with JSON heartbeats; whether it answers protocol
                    # pings is unknown, so the client does not send them.
                    ping_interval=None,
                    max_size=_MAX_FRAME,
                    open_timeout=None,
                    close_timeout=2,
                    compression=None,
                    create_connection=_Connection,
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 404:
                raise NotFound(404, "the channel no longer exists", path=uri) from None
            raise TransportError(f"websocket to {uri} refused: HTTP {status}") from None
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise TransportError(f"websocket to {uri}: {exc or type(exc).__name__}") from None
        assert isinstance(connection, _Connection)
        return cls(connection, uri, clock)

    async def batches(self) -> AsyncIterator[list[str | bytes]]:
        """The text messages received, in arrival order, as lists of whatever arrived together,
        until the socket closes (for whatever reason). A message that is not valid UTF-8 comes
        as bytes; binary messages are skipped."""
        connection = self._connection
        while True:
            if connection.texts:
                self.last_frame = self._clock.monotonic()
                yield connection.take()
            elif connection.lost:
                return
            else:
                connection.arrived.clear()
                await connection.arrived.wait()

    @property
    def close_reason(self) -> str:
        code = self._connection.close_code
        if code is None or code == 1006:
            return "dropped without a close frame"
        return f"closed ({code} {self._connection.close_reason or ''})".strip()

    async def ping(self) -> None:
        """Ask the server for a pong (an application ping, as Genesys's SDKs send)."""
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._connection.send(encode_ping())

    async def close(self) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, asyncio.TimeoutError):
            await self._connection.close()

    @property
    def closed(self) -> bool:
        return self._connection.state is websockets.protocol.State.CLOSED
