"""The daemon's websocket (monitor/genesys/socket.py) against a bare websockets server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket as net
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def _frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked frame, as a server sends it."""
    size = len(payload)
    if size < 126:
        length = bytes([size])
    elif size < 1 << 16:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([127]) + size.to_bytes(8, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + payload


def _stream() -> tuple[bytes, list[str | bytes]]:
    """Frames of every kind and size a server may send, and the messages they make."""
    frames: list[bytes] = []
    expected: list[str | bytes] = []
    for n in range(40):
        text = f'{{"n":{n},"pad":"{"x" * (n * 37 % 400)}"}}'
        frames.append(_frame(0x1, text.encode()))
        expected.append(text)
        if n % 9 == 3:  # a fragmented message, a ping between its fragments
            frames += [
                _frame(0x1, b'{"part":', fin=False),
                _frame(0x9, b"ping"),
                _frame(0x0, b'"two"}'),
            ]
            expected.append('{"part":"two"}')
        if n % 11 == 5:
            frames += [_frame(0x2, b"\x00binary"), _frame(0xA, b"pong")]
        if n % 13 == 7:
            big = '{"big":"' + "y" * 70_000 + '"}'
            frames.append(_frame(0x1, big.encode()))
            expected.append(big)
        if n % 17 == 9:
            frames.append(_frame(0x1, b"\xff\xfe not utf-8"))
            expected.append(b"\xff\xfe not utf-8")
    return b"".join(frames), expected


async def _split_stream(cuts: list[int]) -> tuple[list[str | bytes], int]:
    """Serve the stream of `_stream()` to a Socket, written in pieces of the given sizes (and
    then the rest) with a pause after each, so that reads end inside frames and headers."""
    data, _ = _stream()

    async def serve_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        position = 0
        for cut in cuts:
            writer.write(data[position : position + cut])
            position += cut
            await writer.drain()
            await asyncio.sleep(0.002)
        writer.write(data[position:])
        await writer.drain()
        while True:  # the client's frames (pongs, then a close; masked, all short)
            head = await reader.readexactly(2)
            await reader.readexactly(4 + (head[1] & 0x7F))
            if head[0] & 0x0F == 0x8:
                break
        writer.write(_frame(0x8, (1000).to_bytes(2, "big")))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve_raw, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        socket = await Socket.open(f"ws://127.0.0.1:{port}/", SystemClock(), scaled(5))
        _, expected = _stream()
        out: list[str | bytes] = []

        async def read() -> None:
            async for batch in socket.batches():
                out.extend(batch)
                if len(out) >= len(expected):
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), scaled(10))
        direct = socket._connection.direct
        await socket.close()
        return out, direct


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), max_size=40))
def test_messages_arrive_whole_however_the_bytes_are_split(cuts: list[int]) -> None:
    """Text frames of every size, fragmented messages with pings inside, binary and pong frames
    and text that is not UTF-8, received in pieces cut anywhere: every message arrives whole and
    in order, and the ordinary ones are cut out of the bytes without the library's parser."""
    out, direct = asyncio.run(_split_stream(cuts))
    assert out == _stream()[1]
    assert direct > 0
