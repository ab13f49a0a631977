"""Consumers of the firehose that run in processes of their own, for comparison with the daemon.

- `bare_library`: the ceiling, as the issue describes it: a bare client of the websockets library,
  with the daemon's settings, that only receives each message (`async for`) and parses it
  (json.loads).
- `bare_socket`: the same on the daemon's own websocket (monitor/genesys/socket.py), which cuts
  ordinary text frames out of the received bytes itself and hands them over in batches: no
  daemon built on this socket can go faster, so it shows what the daemon's own work costs.
- `bare_raw`: the same with the websocket framing read by a few lines of code and no library at
  all (no handshake checks, no control frames): the floor of what framing costs in Python.
- `naive`: the naive design the issue compares against: the daemon's decoder, then one INSERT and
  one commit per event, with SQLite's default journal and synchronous settings, no batching.

Each is started with `multiprocessing` (spawn), connects, sends "connected" on its pipe, counts
event frames until it has `expected` of them, and sends back a dict: `frames`, `first` and `done`
(time.perf_counter() of the first event frame and of the moment the last one was finished; the
clock is system-wide, so the parent can compare) and `cpu` (its CPU seconds meanwhile).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

from monitor.clock import SystemClock
from monitor.core.wire import Updates, decode
from monitor.errors import DecodeError
from monitor.genesys.socket import Socket

_USERS = '{"topicName":"v2.users.'
NAIVE_SCHEMA = """
CREATE TABLE transitions (
    agent_id TEXT NOT NULL, kind TEXT NOT NULL, from_value TEXT, to_value TEXT NOT NULL,
    definition_id TEXT, event_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL, source TEXT NOT NULL,
    UNIQUE (agent_id, kind, event_ms, to_value, definition_id)
)
"""


class _Count:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.frames = 0
        self.first = 0.0
        self.done = 0.0
        self.finished = asyncio.Event()

    def add(self, n: int = 1) -> None:
        if not self.frames:
            self.first = time.perf_counter()
        self.frames += n
        if self.frames >= self.expected and not self.finished.is_set():
            self.done = time.perf_counter()
            self.finished.set()

    def result(self, cpu: float) -> dict[str, Any]:
        return {"frames": self.frames, "first": self.first, "done": self.done, "cpu": cpu}


async def _websockets(uris: list[str]) -> list[ClientConnection]:
    # The daemon's settings (monitor/genesys/socket.py): no compression, no protocol pings.
    return [
        await connect(
            uri, compression=None, ping_interval=None, max_size=4 * 1024 * 1024, max_queue=64
        )
        for uri in uris
    ]


async def _serve(conn: Connection, count: _Count, tasks: list[asyncio.Task[None]]) -> None:
    conn.send("connected")
    cpu = time.process_time()
    await count.finished.wait()
    cpu = time.process_time() - cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(count.result(cpu))


# --- the ceiling -------------------------------------------------------------------------------


def bare_library(uris: list[str], expected: int, conn: Connection) -> None:
    asyncio.run(_bare_library(uris, expected, conn))


async def _bare_library(uris: list[str], expected: int, conn: Connection) -> None:
    sockets = await _websockets(uris)
    count = _Count(expected)
    loads = json.loads

    async def receive(ws: ClientConnection) -> None:
        async for message in ws:
            if loads(message)["topicName"].startswith("v2.users."):
                count.add()

    await _serve(conn, count, [asyncio.create_task(receive(ws)) for ws in sockets])
    for ws in sockets:
        ws.transport.abort()


# --- the daemon's socket ------------------------------------------------------------------------


def bare_socket(uris: list[str], expected: int, conn: Connection) -> None:
    asyncio.run(_bare_socket(uris, expected, conn))


async def _bare_socket(uris: list[str], expected: int, conn: Connection) -> None:
    clock = SystemClock()
    sockets = [await Socket.open(uri, clock, 10) for uri in uris]
    count = _Count(expected)
    loads = json.loads

    async def receive(socket: Socket) -> None:
        async for batch in socket.batches():
            events = 0
            for message in batch:
                if loads(message)["topicName"].startswith("v2.users."):
                    events += 1
            if events:
                count.add(events)

    await _serve(conn, count, [asyncio.create_task(receive(s)) for s in sockets])
    for socket in sockets:
        await socket.close()


# --- the same without the library -------------------------------------------------------------


def bare_raw(uris: list[str], expected: int, conn: Connection) -> None:
    asyncio.run(_bare_raw(uris, expected, conn))


async def _handshake(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(uri)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:40]!r}")
    # Whatever followed the handshake stays in the reader's buffer for the first read.
    return reader, writer


async def _bare_raw(uris: list[str], expected: int, conn: Connection) -> None:
    streams = [await _handshake(uri) for uri in uris]
    count = _Count(expected)
    loads = json.loads

    async def receive(reader: asyncio.StreamReader) -> None:
        buffer = b""
        while True:
            data = await reader.read(1 << 18)
            if not data:
                return
            buffer += data
            position, size, events = 0, len(buffer), 0
            # Server frames are unmasked and, from this server, never fragmented.
            while size - position >= 2:
                length, header = buffer[position + 1] & 0x7F, 2
                if length == 126:
                    if size - position < 4:
                        break
                    length, header = int.from_bytes(buffer[position + 2 : position + 4]), 4
                elif length == 127:
                    if size - position < 10:
                        break
                    length, header = int.from_bytes(buffer[position + 2 : position + 10]), 10
                end = position + header + length
                if end > size:
                    break
                if buffer[position] & 0x0F == 1:
                    frame = loads(buffer[position + header : end])
                    if frame["topicName"].startswith("v2.users."):
                        events += 1
                position = end
            buffer = buffer[position:]
            if events:
                count.add(events)

    await _serve(conn, count, [asyncio.create_task(receive(r)) for r, _ in streams])
    for _, writer in streams:
        writer.transport.abort()


# --- the naive design --------------------------------------------------------------------------


def naive(uris: list[str], expected: int, db: str, conn: Connection) -> None:
    asyncio.run(_naive(uris, expected, Path(db), conn))


async def _naive(uris: list[str], expected: int, db: Path, conn: Connection) -> None:
    store = sqlite3.connect(db)  # default journal (DELETE) and synchronous (FULL)
    store.execute(NAIVE_SCHEMA)
    store.commit()
    sockets = await _websockets(uris)
    count = _Count(expected)

    async def receive(ws: ClientConnection) -> None:
        async for message in ws:
            now_ms = time.time_ns() // 1_000_000
            try:
                decoded = decode(message, now_ms)
            except DecodeError:
                continue
            if type(decoded) is not Updates:
                continue
            for u in decoded.updates:
                store.execute(
                    "INSERT OR IGNORE INTO transitions VALUES (?, ?, NULL, ?, ?, ?, ?, 'live')",
                    (u.agent_id, u.kind.value, u.value, u.definition_id, u.event_ms, now_ms),
                )
                store.commit()
            count.add()

    await _serve(conn, count, [asyncio.create_task(receive(ws)) for ws in sockets])
    for ws in sockets:
        ws.transport.abort()
    store.close()
