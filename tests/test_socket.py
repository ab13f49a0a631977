"""The daemon's websocket (monitor/genesys/socket.py) against a bare websockets server."""

from __future__ import annotations

import asyncio
import socket as net
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from monitor.clock import SystemClock
from monitor.errors import NotFound, TransportError
from monitor.genesys.socket import Socket
from tests.support import scaled

Handler = Callable[[ServerConnection], Awaitable[None]]


async def received(handler: Handler, until: int) -> list[str | bytes]:
    """Open a Socket to a server running `handler`, and read until `until` messages or the end."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await Socket.open(f"ws://127.0.0.1:{port}/", SystemClock(), scaled(5))
        out: list[str | bytes] = []

        async def read() -> None:
            async for batch in socket.batches():
                out.extend(batch)
                if len(out) >= until:
                    return

        await asyncio.wait_for(read(), scaled(20))
        await socket.close()
        return out


async def test_messages_arrive_whole_and_in_order_past_the_high_water_mark() -> None:
    """Thousands of messages sent at once (more than the socket buffers before it stops
    reading), fragmented ones among them, all arrive in order, reassembled; binary ones are
    skipped."""

    async def handler(ws: ServerConnection) -> None:
        for n in range(5000):
            if n % 1000 == 7:
                await ws.send(iter([f'{{"n":{n},', '"part":"two"}']))
                await ws.send(b"\x00binary")
            else:
                await ws.send(f'{{"n":{n}}}')
        await ws.wait_closed()

    out = await received(handler, until=5000)
    assert len(out) == 5000
    assert out[7] == '{"n":7,"part":"two"}'
    assert [int(str(m).split(":")[1].split(",")[0].rstrip("}")) for m in out] == list(range(5000))


async def test_text_that_is_not_utf8_comes_as_bytes() -> None:
    """A text frame whose payload is not UTF-8 is handed on as bytes (the decoder refuses it),
    and the socket keeps reading."""

    async def handler(ws: ServerConnection) -> None:
        # The protocol layer sends what it is given; a broken server could do the same.
        ws.protocol.send_text(b"\xff\xfe not utf-8")
        ws.send_data()
        await ws.send('{"after":1}')
        await ws.wait_closed()

    assert await received(handler, until=2) == [b"\xff\xfe not utf-8", '{"after":1}']


async def test_batches_end_when_the_server_closes() -> None:
    """The messages sent before a close are all delivered, then the batches end, with the close
    code in the reason."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send('{"last":1}')
        await ws.close(4000, "bye")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        socket = await Socket.open(f"ws://127.0.0.1:{port}/", SystemClock(), scaled(5))
        out = [m async for batch in socket.batches() for m in batch]
        assert out == ['{"last":1}']
        assert socket.close_reason == "closed (4000 bye)"
        assert socket.closed


@pytest.fixture
async def refusing() -> AsyncIterator[int]:
    def reject(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(404, "no such channel\n")

    async def never(ws: ServerConnection) -> None:
        raise AssertionError("not reached")

    async with serve(never, "127.0.0.1", 0, process_request=reject) as server:
        yield server.sockets[0].getsockname()[1]


async def test_a_refused_handshake_is_translated(refusing: int) -> None:
    """A 404 at the handshake means the channel is gone (NotFound); nothing listening is a
    TransportError."""
    with pytest.raises(NotFound):
        await Socket.open(f"ws://127.0.0.1:{refusing}/", SystemClock(), scaled(5))
    with net.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = unused.getsockname()[1]
        with pytest.raises(TransportError):
            await Socket.open(f"ws://127.0.0.1:{port}/", SystemClock(), scaled(5))
