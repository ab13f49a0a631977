"""The batch writer: the process that writes batches of transitions, and the daemon's end of it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from monitor.core.model import Kind, Source, Transition
from monitor.errors import StoreError
from monitor.store import Store, Writer
from monitor.store.batch_write import encode, read_message, serve
from monitor.store.rows import wire_rows
from tests.support import eventually

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def tr(agent: str, to: str, event_ms: int, kind: Kind = Kind.ROUTING) -> Transition:
    return Transition(agent, kind, None, to, None, event_ms, event_ms + 5, Source.LIVE)


def batch_writers() -> list[int]:
    """The pids of this process's children that run the batch writer."""
    pids: list[int] = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as children:
            pids.extend(int(pid) for pid in children.read().split())
    found = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/cmdline", "rb") as cmd:
            if b"monitor.store.batch_write" in cmd.read():
                found.append(pid)
    return found


def count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM transitions").fetchone()[0])


def replies(requests: list[object]) -> list[tuple[str, object]]:
    """serve()'s replies to `requests`, through in-memory streams."""
    out = io.BytesIO()
    serve(io.BytesIO(b"".join(encode(r) for r in requests)), out)
    out.seek(0)
    found = []
    while (reply := read_message(out)) is not None:
        found.append(reply)
    return found


async def test_closing_the_store_ends_its_batch_writer(tmp_path: Path) -> None:
    """close() lets the batch writer's process exit (and reaps it), leaving no connection in a
    transaction: a process that opens and closes stores keeps no children or files open."""
    before = set(batch_writers())
    store = await Store.open(tmp_path / "monitor.db")
    await store.write([tr("a1", "IDLE", T0)])
    assert len(set(batch_writers()) - before) == 1
    await store.close()
    assert set(batch_writers()) == before
    with contextlib.closing(sqlite3.connect(tmp_path / "monitor.db")) as other:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("ROLLBACK")


async def test_a_killed_batch_writer_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    """When the batch writer's process dies, the write waiting on it fails with StoreError, the
    next write starts a new process, and the writer's retry commits every transition once."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        assert await store.write([tr("a1", "IDLE", T0)]) == 1
        (pid,) = batch_writers()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StoreError, match="batch writer process ended"):
            await store.write([tr("a1", "BUSY", T0 + 1)])
        assert await store.write([tr("a1", "BUSY", T0 + 1)]) == 1
        (replacement,) = batch_writers()
        assert replacement != pid
        os.kill(replacement, signal.SIGKILL)
        writer = Writer(store, max_batch=10, max_delay_s=0, retry_initial_s=0.01)
        running = asyncio.create_task(writer.run())
        for i in range(25):
            await writer.put(tr(f"agent-{i}", "IDLE", T0 + 10 + i))
        await writer.drain(timeout_s=30)
        await running
        assert count(path) == 2 + 25


async def test_the_batch_writer_ignores_interrupts_meant_for_the_daemon(tmp_path: Path) -> None:
    """SIGINT and SIGTERM, which a terminal or service manager sends to the whole process group,
    do not stop the batch writer: the daemon can still write its last batches."""
    async with await Store.open(tmp_path / "monitor.db") as store:
        await store.write([tr("a1", "IDLE", T0)])
        (pid,) = batch_writers()
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert await store.write([tr("a1", "BUSY", T0 + 1)]) == 1
        assert batch_writers() == [pid]


async def test_the_batch_writer_checkpoints_the_wal_beside_the_writes(tmp_path: Path) -> None:
    """With SQLite's automatic checkpoint off, the batch writer still copies the WAL back into
    the database within moments of a commit, on a connection of its own."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path, wal_autocheckpoint=0) as store:
        await store.write([tr(f"agent-{i}", "IDLE", T0 + i) for i in range(2000)])

        def backfilled() -> bool:
            # immutable=1 reads the database file alone, as if there were no WAL.
            uri = f"{path.as_uri()}?immutable=1"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                try:
                    (count,) = conn.execute("SELECT count(*) FROM transitions").fetchone()
                except sqlite3.OperationalError:  # not even the schema is in the file yet
                    return False
            return bool(count == 2000)

        await eventually(backfilled, within=5, message="the WAL checkpointed")


def test_the_batch_writer_answers_every_request_in_order(tmp_path: Path) -> None:
    """serve() answers each request: the keys of new agents and the count of new transitions,
    a SQLite failure as an error naming it, and anything it cannot understand as a bug."""
    path = tmp_path / "monitor.db"
    # A store's file with its schema, written by a store and closed again.
    asyncio.run(_create(path))
    settings = ["PRAGMA busy_timeout = 100"]
    first = wire_rows([tr("a1", "IDLE", T0), tr("a2", "IDLE", T0, Kind.PRESENCE)])
    answers = replies(
        [
            ("write", first),  # before "open"
            ("open", str(path), settings),
            ("write", first),
            ("write", first),  # a replay
            ("write", [("a1", "bogus", None, "IDLE", "", T0 + 1, T0, "live", 0)]),
            ("frobnicate",),
        ]
    )
    assert answers[0][0] == "error"
    assert "no database open" in str(answers[0][1])
    assert answers[1] == ("ok", None)
    assert answers[2][0] == "ok"
    assert answers[2][1] == (2, {"a1": 1, "a2": 2})
    assert answers[3] == ("ok", (0, {}))
    assert answers[4][0] == "error"
    assert "constraint" in str(answers[4][1]).lower()
    assert answers[5][0] == "bug"
    assert "unknown request" in str(answers[5][1])
    assert count(path) == 2


def test_wire_rows_carry_the_stored_text_of_kinds_and_sources() -> None:
    """A transition goes to the batch writer with its kind and source as the text the store
    keeps, no definition as "", and late as 0 or 1."""
    late = Transition("a1", Kind.PRESENCE, "x", "y", None, 1, 2, Source.SNAPSHOT, late=True)
    assert wire_rows([late, tr("a2", "IDLE", 5)]) == [
        ("a1", "presence", "x", "y", "", 1, 2, Source.SNAPSHOT.value, 1),
        ("a2", "routing", None, "IDLE", "", 5, 10, Source.LIVE.value, 0),
    ]


async def _create(path: Path) -> None:
    async with await Store.open(path):
        pass
