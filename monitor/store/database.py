"""The SQLite connections: opening, settings, migrations, transactions, backups, closing.

This module and sqlite.py are the only ones that import aiosqlite; every sqlite3/aiosqlite
exception is translated into StoreError at their boundary.

One connection does the small writes and reads. aiosqlite runs it on its own thread and
executes calls in order, but a transaction made of several awaited calls could still be cut in two
if the awaiting task were cancelled between them, leaving the connection inside an open
transaction. So each transaction runs in a task of its own that callers await through
`asyncio.shield`: a cancelled caller stops waiting, while the transaction still commits or rolls
back as a whole, and `close()` waits for it. An asyncio.Lock (first come, first served) keeps
transactions and reads on that connection from interleaving.

Batches of transitions go through a second connection, in a process of its own (the batch
writer: batch_write.py, started by batch_process.py), as one request per transaction (`_batch`),
in a task of their own like the others. Through aiosqlite a batch would be a score of calls
(BEGIN, the chunks of rows and of states, COMMIT), each waiting for the event loop's next turn; on
a thread of the daemon its Python work would compete with the event loop for the GIL. In the
process it runs beside the loop, and the loop only pickles the rows. The same asyncio.Lock covers
both connections, so their transactions never contend for SQLite's write lock.

Batches form a lane: a batch that comes while another is being written joins it and goes to the
process at once, without taking the lock again, and the process writes them back to back; the
lane holds the lock from its first batch until its last one has committed. A batch joins only
while no other caller waits for the lock, so those wait at most for the batches already in the
lane.

Exports, backups and integrity checks read through short-lived read-only connections of their own:
in WAL mode they see one consistent snapshot and never hold up the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiosqlite
import structlog

from monitor.errors import StoreError
from monitor.store.batch_process import BatchProcess
from monitor.store.batch_write import WireRow, describe
from monitor.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Page cache of the batch connection (the one that writes transitions), in MiB. Measured with
# bench/bench_store.py on two million transitions (a 300 MiB file: table 143 MiB, natural-key
# index 111 MiB, per-agent index 46 MiB):
# inserts run as fast with 8 MiB as with 256 MiB, because they touch only the right edges of the
# table and of the natural-key index (the per-agent index takes each hour once it is over, in one
# sorted append: schema.py). The cache is
# the largest single part of the daemon's resident memory once the file outgrows it (the chaos
# run: 64 MiB of 220 at 5,000 agents), and reads of past days go to the report cache, so it is
# kept small; the operating system's file cache serves the rest.
DEFAULT_CACHE_MIB = 8
# The other connection's: it writes small transactions and reads little (current state at start,
# gaps, the audit trail); report reads of past days go to the report cache.
_MAIN_CACHE_MIB = 2
# Pages of WAL before an automatic checkpoint (SQLite's default is 1,000). A commit of a large
# batch dirties hundreds of pages, and with the default nearly every such commit would pay for a
# checkpoint and its fsyncs; checkpointing less often also copies each hot page back once for
# many commits (bench_store.py, burst on two million rows: about 25,000 transitions/s with 1,000,
# 33,000/s with 10,000). The WAL grows to about 40 MiB; journal_size_limit trims it afterwards.
DEFAULT_WAL_AUTOCHECKPOINT = 10_000
_JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn sqlite3 (and so aiosqlite) and file-system errors into StoreError."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"{what}: {describe(exc)}") from exc


async def scalar(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """The first column of the first row, or None."""
    rows = list(await conn.execute_fetchall(sql, params))
    return rows[0][0] if rows else None


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Some failures (a full disk during COMMIT) leave the transaction open and some end it;
    # "no transaction is active" is the expected answer in the second case.
    with contextlib.suppress(sqlite3.Error):
        await conn.execute("ROLLBACK")


class Database:
    """One SQLite file with the monitor's schema. Open it with `await <class>.open(path)`."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = conn
        self._batches = BatchProcess(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = asyncio.Lock()
        self._waiting = 0  # callers waiting for the lock
        self._lane = 0  # batches in the lane (see the module docstring), holding the lock
        self._inflight: set[asyncio.Task[Any]] = set()

    # --- opening and closing ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        cache_mib: int = DEFAULT_CACHE_MIB,
        busy_timeout_ms: int = 5000,
        wal_autocheckpoint: int = DEFAULT_WAL_AUTOCHECKPOINT,
    ) -> Self:
        """Open (creating the file and its folder if needed) and migrate the database."""
        path = Path(path)
        with translate(f"cannot create the folder of {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise StoreError(f"cannot open {path}: it is a folder, not a database file")
        with translate(f"cannot open {path}"):
            conn = await aiosqlite.connect(
                path, isolation_level=None, timeout=busy_timeout_ms / 1000
            )
        database = cls(path, conn, busy_timeout_ms)
        try:
            settings = database._settings(wal_autocheckpoint)
            await database._configure(settings, _MAIN_CACHE_MIB)
            await database._migrate()
            database._batches.open([*settings, f"PRAGMA cache_size = -{int(cache_mib) * 1024}"])
            await database._load()
        except BaseException:
            database._detach()
            await database._batches.close()
            with contextlib.suppress(sqlite3.Error):
                await conn.close()
            raise
        return database

    def _settings(self, wal_autocheckpoint: int) -> list[str]:
        """The settings both connections take (WAL mode is the file's, set once)."""
        return [
            f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}",
            f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}",
        ]

    async def _configure(self, settings: Sequence[str], cache_mib: int) -> None:
        conn = self._open_conn()
        with translate(f"cannot open {self.path}"):
            await conn.execute(settings[0])  # busy_timeout, before anything waits for a lock
            # The first statement that reads the file: a file that is not SQLite fails here.
            mode = await self._enter_wal(conn)
            for statement in (*settings[1:], f"PRAGMA cache_size = -{int(cache_mib) * 1024}"):
                await conn.execute(statement)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"cannot open {self.path}: SQLite refused WAL mode (journal_mode is {mode}); "
                "the database must be on a local file system"
            )

    async def _enter_wal(self, conn: aiosqlite.Connection) -> Any:
        """`PRAGMA journal_mode = WAL`, retried while another connection holds the file: on a
        new file the switch needs an exclusive lock and SQLite answers "locked" at once rather
        than wait (two processes starting on the same new file)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_ms / 1000
        while True:
            try:
                return await scalar(conn, "PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.02)

    async def _migrate(self) -> None:
        conn = self._open_conn()
        with translate(f"cannot open {self.path}"):
            version = await scalar(conn, "PRAGMA user_version")
            application = await scalar(conn, "PRAGMA application_id")
        if application not in (0, APPLICATION_ID):
            raise StoreError(
                f"cannot open {self.path}: it belongs to another application "
                f"(application_id {application:#x})"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"cannot open {self.path}: its schema version {version} is newer than this "
                f"monitor's ({SCHEMA_VERSION}); upgrade the monitor or open an older backup"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            await self._transaction(
                f"cannot migrate {self.path} to schema version {target}",
                self._migration_to(target),
            )

    def _migration_to(self, target: int) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
        async def migrate(conn: aiosqlite.Connection) -> None:
            # Read again under the write lock: another process may have migrated meanwhile.
            version = await scalar(conn, "PRAGMA user_version")
            if version >= target:
                return
            if version == 0 and await scalar(conn, "SELECT count(*) FROM sqlite_schema"):
                raise StoreError(
                    f"cannot open {self.path}: it holds tables but no schema version; "
                    "it is not a monitor database"
                )
            for statement in MIGRATIONS[target - 1]:
                await conn.execute(statement)
            # In the same transaction as the statements: both land, or neither.
            await conn.execute(f"PRAGMA user_version = {int(target)}")
            log.info("store.migrated", path=str(self.path), version=target)

        return migrate

    async def _load(self) -> None:
        """Read what the subclass keeps in memory; runs once, after migrating."""

    async def close(self) -> None:
        """Wait for a transaction in progress, run PRAGMA optimize and close. Idempotent."""
        if self._conn is None:
            return
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        async with self._locked():
            conn = self._detach()
            if conn is None:  # closed by a concurrent close() while this one waited
                return
            try:
                # SQLite's advice: a bounded analysis, so that closing stays quick on big tables.
                await conn.execute("PRAGMA analysis_limit = 400")
                await conn.execute("PRAGMA optimize")
            except sqlite3.Error as exc:
                log.warning("store.optimize_failed", path=str(self.path), error=str(exc))
            finally:
                with translate(f"cannot close {self.path}"):
                    try:
                        await self._batches.close()
                    finally:
                        await conn.close()

    def _detach(self) -> aiosqlite.Connection | None:
        conn, self._conn = self._conn, None
        return conn

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- running statements -------------------------------------------------------------------

    def _open_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        return self._conn

    async def _transaction(
        self,
        what: str,
        body: Callable[[aiosqlite.Connection], Awaitable[T]],
        committed: Callable[[T], None] | None = None,
    ) -> T:
        """Run `body` in one BEGIN IMMEDIATE transaction; `committed` runs only after COMMIT.

        The transaction is a task of its own, so cancelling the caller never leaves it half done
        (see the module docstring); `committed` runs in that task for the same reason.
        """

        async def run() -> T:
            async with self._locked():
                return await self._under_lock(what, lambda: self._on_main(body), committed)

        return await self._in_own_task(run)

    async def _batch(
        self,
        what: str,
        batch: list[WireRow],
        committed: Callable[[tuple[int, dict[str, int]]], None],
    ) -> tuple[int, dict[str, int]]:
        """Write a batch of transitions through the batch writer process in one transaction, in
        the lane (see the module docstring): (transitions that were new, {agent id: key} of the
        agents it looked up). `committed` runs with that only after COMMIT."""
        batches = self._batches

        async def run() -> tuple[int, dict[str, int]]:
            # The lane holds the lock whenever it is not empty, so a batch that finds it empty
            # waits for the lock like any other caller, and one that joins needs none.
            if not self._lane or self._waiting:
                await self._acquire()
            self._lane += 1
            try:
                return await self._under_lock(what, lambda: batches.write(what, batch), committed)
            finally:
                self._lane -= 1
                if not self._lane:
                    self._lock.release()

        return await self._in_own_task(run)

    async def _in_own_task(self, run: Callable[[], Awaitable[T]]) -> T:
        """`run()` in a task of its own that the caller awaits shielded."""
        self._open_conn()
        task = asyncio.ensure_future(run())
        self._inflight.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        # Marks the outcome as seen even when the caller was cancelled and no longer awaits it.
        if not task.cancelled() and task.exception() is not None:
            log.debug("store.transaction_failed", error=str(task.exception()))

    async def _under_lock(
        self, what: str, work: Callable[[], Awaitable[T]], committed: Callable[[T], None] | None
    ) -> T:
        """`work()` with its errors translated, then `committed`; the caller holds the lock."""
        self._open_conn()
        with translate(what):
            result = await work()
        if committed is not None:
            committed(result)
        return result

    async def _acquire(self) -> None:
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The lock, counted among the waiters while waiting for it."""
        await self._acquire()
        try:
            yield
        finally:
            self._lock.release()

    async def _on_main(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """`body` in one transaction on the main connection; under the lock."""
        conn = self._open_conn()
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first can
        # hit SQLITE_BUSY on its first write, which busy_timeout cannot cure.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            result = await body(conn)
            await conn.execute("COMMIT")
        except BaseException:
            await _rollback(conn)
            raise
        return result

    async def _read(self, what: str, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `body` on the main connection, between transactions."""
        async with self._locked():
            conn = self._open_conn()
            with translate(what):
                return await body(conn)

    async def _fetch(self, what: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async def body(conn: aiosqlite.Connection) -> list[Any]:
            return list(await conn.execute_fetchall(sql, params))

        return await self._read(what, body)

    @contextlib.asynccontextmanager
    async def _reader(self, path: Path | None = None) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only connection of its own (to this database, or to `path`)."""
        self._open_conn()
        target = (path or self.path).absolute()
        with translate(f"cannot read {target}"):
            conn = await aiosqlite.connect(
                f"{target.as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=self._busy_timeout_ms / 1000,
            )
        try:
            yield conn
        finally:
            with translate(f"cannot close {target}"):
                await conn.close()

    # --- backups and checks -------------------------------------------------------------------

    async def version(self) -> int:
        """The schema version of the database (PRAGMA user_version)."""

        async def body(conn: aiosqlite.Connection) -> int:
            return int(await scalar(conn, "PRAGMA user_version"))

        return await self._read(f"cannot read the schema version of {self.path}", body)

    async def backup(self, path: str | Path) -> None:
        """Write a consistent, compacted copy to `path` (VACUUM INTO) and check it.

        Refuses to overwrite an existing file. The copy is made through a read-only connection,
        so writes go on meanwhile; a copy that fails its integrity check is deleted.
        """
        target = Path(path)
        _prepare_new_file(target)
        try:
            async with self._reader() as conn:
                with translate(f"cannot back up to {target}"):
                    await conn.execute("VACUUM INTO ?", (str(target),))
            result = await self._integrity(target)
        except BaseException:
            _remove(target)
            raise
        if result != "ok":
            _remove(target)
            raise StoreError(f"the backup {target} failed its integrity check: {result}")
        log.info("store.backed_up", path=str(target))

    async def integrity_check(self) -> str:
        """PRAGMA integrity_check: "ok", or the problems found, one per line."""
        return await self._integrity(None)

    async def _integrity(self, path: Path | None) -> str:
        async with self._reader(path) as conn:
            with translate(f"cannot check {path or self.path}"):
                rows = await conn.execute_fetchall("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)


def _prepare_new_file(target: Path) -> None:
    """Refuse an existing `target` and create its folder."""
    if target.exists():
        raise StoreError(f"cannot back up to {target}: the file exists already")
    with translate(f"cannot create the folder of {target}"):
        target.parent.mkdir(parents=True, exist_ok=True)


def _remove(target: Path) -> None:
    with contextlib.suppress(OSError):
        target.unlink(missing_ok=True)
