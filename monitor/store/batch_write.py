"""The batch writer: a process of its own that writes the batches of transitions into SQLite.

    python -m monitor.store.batch_write

The daemon (store/batch_process.py) starts it and talks to it over its standard input and output.
Each message is a pickle preceded by its length (four bytes, big-endian); every request gets one
reply, in order:

    ("open", path, [PRAGMA statement, ...])   ->  ("ok", None)
    ("write", [WireRow, ...])                  ->  ("ok", (inserted, {agent id: key}))
                     any request, on failure  ->  ("error", description) for SQLite and file
                                                  errors, ("bug", traceback) for anything else

Why a process. Writing a batch is Python work as well as SQLite work: keying and ordering the
rows, binding their parameters. On a thread of the daemon that work competed for the GIL with the
event loop, which decodes the frames; under load each slowed the other, and a batch of 10,000
took 85-250 ms. Here it runs beside the event loop, and the daemon only pickles the rows.

End of input means the daemon has closed the pipe (or died): the process closes the database and
exits. It ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the whole
process group, so that the daemon can still write its last batches while it shuts down.

This module imports only the standard library and the SQL text, to keep the process small.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sqlite3
import struct
import sys
import threading
import traceback
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

from monitor.store import queries as q

# (agent id, kind, from value, to value, definition id or "", event ms, seen ms, source, late 0/1):
# a transition as the daemon sends it (rows.wire_rows), the transitions row but for the agent id.
WireRow = tuple[str, str, str | None, str, str, int, int, str, int]
TransitionRow = tuple[int, str, str | None, str, str, int, int, str, int]
StateRow = tuple[int, str, str, str, int, int]

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size
_PICKLE_PROTOCOL = 5
# How often the WAL is checkpointed in the background (_Checkpointer).
CHECKPOINT_EVERY_S = 0.5
_PRESENCE = "presence"
_ROUTING = "routing"


def describe(exc: BaseException) -> str:
    """What went wrong, in words, with SQLite's error name where it helps."""
    text = str(exc) or type(exc).__name__
    name = getattr(exc, "sqlite_errorname", None)
    if name in {"SQLITE_NOTADB", "SQLITE_CORRUPT"}:
        return f"{text}: the file is not a SQLite database or it is damaged"
    if name == "SQLITE_BUSY":
        return f"{text}: another connection holds the write lock"
    return f"{text} ({name})" if name else text


# --- framing (both ends) ---------------------------------------------------------------------


def encode(message: object) -> bytes:
    """A message with its length in front."""
    body = pickle.dumps(message, _PICKLE_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def body_size(header: bytes) -> int:
    (size,) = _HEADER.unpack(header)
    return int(size)


def read_message(stream: BinaryIO) -> Any:
    """The next message, or None at end of input."""
    header = stream.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return None
    size = body_size(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


# --- writing a batch -------------------------------------------------------------------------


def transition_rows(
    batch: Sequence[WireRow], keys: dict[str, int]
) -> tuple[list[TransitionRow], list[StateRow]]:
    """The transitions rows of a batch, and the current_state row of each agent and kind for its
    newest transition in the batch (in the order of queries.NEWEST_FIRST; late transitions are
    history only and never become a current state), in current_state's key order: upserts in key
    order touch each page of the table once, and took half the time of upserts in batch order."""
    rows: list[TransitionRow] = []
    # (agent key * 2 + 1 for routing) -> the newest (event time, value, definition): an int
    # key hashes and sorts faster than a tuple, in the order of current_state's key.
    newest: dict[int, tuple[int, str, str]] = {}
    for agent_id, kind, from_value, to_value, definition, event_ms, seen_ms, source, late in batch:
        key = keys[agent_id]
        rows.append((key, kind, from_value, to_value, definition, event_ms, seen_ms, source, late))
        if late:
            continue
        order = (event_ms, to_value, definition)
        code = key * 2 + (kind == _ROUTING)
        held = newest.get(code)
        if held is None or order > held:
            newest[code] = order
    states: list[StateRow] = []
    for code in sorted(newest):
        event_ms, value, definition = newest[code]
        states.append(
            (code >> 1, _ROUTING if code & 1 else _PRESENCE, value, definition, event_ms, event_ms)
        )
    return rows, states


def key_map(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """{agent id: key} from (id, key) rows."""
    return {str(row[0]): int(row[1]) for row in rows}


def write_batch(
    conn: sqlite3.Connection, keys: dict[str, int], batch: Sequence[WireRow]
) -> tuple[int, dict[str, int]]:
    """Write `batch` in the transaction the caller has begun; return how many transitions were
    new (replays are not counted) and the keys of the agents it had to create or look up."""
    unknown = [agent for agent in dict.fromkeys(row[0] for row in batch) if agent not in keys]
    new_keys: dict[str, int] = {}
    if unknown:
        # An agent may exist already without being in `keys`: the daemon's other connection
        # stores the roster.
        conn.executemany(
            "INSERT INTO agents (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
            [(agent,) for agent in unknown],
        )
        new_keys = key_map(conn.execute(q.AGENT_KEYS, (json.dumps(unknown),)).fetchall())
        keys = {**keys, **new_keys}
    rows, states = transition_rows(batch, keys)
    inserted = 0
    for sql, params in q.multi_row(q.INSERT_TRANSITIONS, rows, q.INSERT_TRANSITIONS_CONFLICT):
        inserted += max(conn.execute(sql, params).rowcount, 0)
    for sql, params in q.multi_row(q.UPSERT_STATES, states, q.UPSERT_STATES_CONFLICT):
        conn.execute(sql, params)
    # Live transitions belong to the current hour, which agent_index takes once it is over;
    # older ones (from a snapshot, or late) go into it now (see schema.py).
    (until,) = conn.execute(q.INDEXED_UNTIL).fetchone()
    early = [(r[5], r[0], r[1], r[3], r[4]) for r in rows if r[5] < until]
    for sql, params in q.multi_row(q.INDEX_EARLY, early, q.INDEX_EARLY_JOIN):
        conn.execute(sql, params)
    return inserted, new_keys


class _Checkpointer:
    """Checkpoints the WAL every CHECKPOINT_EVERY_S on a connection and thread of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, and copying
    ten thousand pages back into the database took that commit 50-150 ms longer, while batches
    queued behind it. A PASSIVE checkpoint on another connection runs beside the writes (WAL
    lets it: it never waits for the writer, nor the writer for it), and sqlite3 releases the GIL
    while it copies. It keeps the WAL far below the automatic threshold, which stays as the
    safety net should this thread fall behind.
    """

    def __init__(self, path: str, settings: Sequence[str]) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Copying frames back needs no page cache: the batch connection's setting is undone.
        for statement in (*settings, "PRAGMA cache_size = 16"):
            self._conn.execute(statement)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                # Busy or failing now, it may do better next time; the automatic one remains.
                print(f"batch writer: checkpoint failed: {describe(exc)}", file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()


class _Batches:
    """The connection and the agent keys it has seen; one transaction per batch."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._keys: dict[str, int] = {}

    def open(self, path: str, settings: Sequence[str]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            for statement in settings:
                conn.execute(statement)
            self._keys = key_map(conn.execute("SELECT id, key FROM agents").fetchall())
            checkpointer = _Checkpointer(path, settings)
        except BaseException:
            conn.close()
            raise
        self.close()
        self._conn, self._checkpointer = conn, checkpointer

    def write(self, batch: Sequence[WireRow]) -> tuple[int, dict[str, int]]:
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError("the batch writer has no database open")
        # IMMEDIATE takes the write lock up front (see database.py).
        conn.execute("BEGIN IMMEDIATE")
        try:
            inserted, new_keys = write_batch(conn, self._keys, batch)
            conn.execute("COMMIT")
        except BaseException:
            # Some failures (a full disk during COMMIT) end the transaction and some leave it open.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        # Only committed keys are kept: a rolled-back batch's new agents do not exist.
        if new_keys:
            self._keys.update(new_keys)
        return inserted, new_keys

    def close(self) -> None:
        conn, self._conn = self._conn, None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        if conn is not None:
            conn.close()


def _answer(batches: _Batches, request: Any) -> tuple[str, Any]:
    try:
        match request:
            case ("open", str(path), list(settings)):
                batches.open(path, settings)
                return "ok", None
            case ("write", list(batch)):
                return "ok", batches.write(batch)
            case _:
                return "bug", f"unknown request {str(request)[:200]}"
    except (sqlite3.Error, OSError) as exc:
        return "error", describe(exc)
    except Exception:
        return "bug", traceback.format_exc()


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the end of input."""
    batches = _Batches()
    try:
        while (request := read_message(requests)) is not None:
            replies.write(encode(_answer(batches, request)))
            replies.flush()
    finally:
        batches.close()


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    # The replies go to the original standard output alone; anything printed by mistake goes to
    # standard error instead of corrupting them.
    with os.fdopen(os.dup(sys.stdout.fileno()), "wb") as replies:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
