"""One websocket to one notification channel.

The only module that imports websockets (client side); its exceptions are translated here: a
refused handshake with 404 means the channel is gone (NotFound), anything else is a
TransportError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from monitor.clock import Clock
from monitor.core.wire import encode_ping
from monitor.errors import NotFound, TransportError

# Genesys documents no frame size limit; presence frames are well under a kilobyte, but a
# generous ceiling keeps a malformed giant frame from exhausting memory.
_MAX_FRAME = 4 * 1024 * 1024


class Socket:
    """A connected websocket. `last_frame` is the clock's monotonic time of the last frame."""

    def __init__(self, connection: ClientConnection, uri: str, clock: Clock) -> None:
        self._connection = connection
        self.uri = uri
        self._clock = clock
        self.last_frame = clock.monotonic()
        self.opened = self.last_frame

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
                    max_queue=64,
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 404:
                raise NotFound(404, "the channel no longer exists", path=uri) from None
            raise TransportError(f"websocket to {uri} refused: HTTP {status}") from None
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise TransportError(f"websocket to {uri}: {exc or type(exc).__name__}") from None
        return cls(connection, uri, clock)

    async def frames(self) -> AsyncIterator[str]:
        """Text frames until the socket closes (for whatever reason); binary frames are skipped."""
        with contextlib.suppress(ConnectionClosed, OSError):
            async for message in self._connection:
                self.last_frame = self._clock.monotonic()
                if isinstance(message, str):
                    yield message

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
