"""Per-day status-time totals, kept in a SQLite file of their own beside the database.

Why a cache: a month of a 1,000-agent contact centre is about three million transitions, and
turning them into time per status means visiting every one of them in time order per agent.
Measured on the project's 2-core machines, SQLite window functions (LEAD over event time per agent
and kind) take about 4.5 s for one such day, and one pass over a day in Python (core.statustime)
about 0.75 s; a month is then 20 s or more however it is written. Past days hardly ever change,
so each closed local day is computed once, its totals per (agent, kind, status) are kept here,
and a report sums those rows in SQL: well under a second for a month.

It is derived data: a file that is missing, damaged, from another schema version or from another
database is rebuilt, and a report never depends on it being there (it falls back to memory).

A cached day records the transitions id it was computed at (`built_id`, the largest id in the
read snapshot) and that row's event time and agent (`built_mark`), and a signature of the gaps
that overlapped it. It is still valid while no transition with a larger id has an event time
before the day's end (a late change, a backfill), the gaps are unchanged, the row at `built_id`
is still the same row (the database was not replaced by another), and the day's bounds in its
time zone are the same (tzdata did not move them).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import aiosqlite
import structlog

from monitor.core.statustime import DayResult, Totals
from monitor.store.database import translate

log = structlog.get_logger(__name__)

CACHE_VERSION: Final = 1

# Small integers everywhere a report sums over: a month of 1,000 agents is about 170,000 rows,
# and SQLite groups rows of integers about half again as fast as rows of repeated text.
_SCHEMA: Final = (
    "CREATE TABLE zones (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    """
    CREATE TABLE statuses (
        code INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        UNIQUE (kind, status)
    )
    """,
    # `day` counts days since 1970-01-01 (the local date, not a UTC instant).
    """
    CREATE TABLE days (
        zone INTEGER NOT NULL,
        day INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        gaps TEXT NOT NULL,
        built_id INTEGER NOT NULL,
        built_mark TEXT NOT NULL,
        PRIMARY KEY (zone, day)
    ) WITHOUT ROWID
    """,
    # Keyed by day first: a report reads a range of days, and a day is replaced as a whole.
    """
    CREATE TABLE totals (
        zone INTEGER NOT NULL,
        day INTEGER NOT NULL,
        agent INTEGER NOT NULL,
        code INTEGER NOT NULL,
        ms INTEGER NOT NULL,
        uncertain_ms INTEGER NOT NULL,
        entries INTEGER NOT NULL,
        longest_ms INTEGER NOT NULL,
        PRIMARY KEY (zone, day, agent, code)
    ) WITHOUT ROWID
    """,
    # The status of each agent and kind at the end of each day: the next day's opening.
    """
    CREATE TABLE closing (
        zone INTEGER NOT NULL,
        day INTEGER NOT NULL,
        agent INTEGER NOT NULL,
        code INTEGER NOT NULL,
        PRIMARY KEY (zone, day, agent, code)
    ) WITHOUT ROWID
    """,
)
_TABLES: Final = ("zones", "statuses", "days", "totals", "closing")
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()


class CacheChanged(Exception):
    """A day this report counted on was dropped from the cache by another report."""


@dataclass(frozen=True, slots=True)
class CachedDay:
    """What the cache knows about one day: its bounds, gap signature and build point."""

    day: date
    start_ms: int
    end_ms: int
    gaps: str
    built_id: int
    built_mark: str


def cache_path(database: Path) -> Path:
    """Where the cache of `database` lives: beside it, `<stem>.report-cache.db`."""
    return database.with_name(f"{database.stem}.report-cache.db")


def _number(day: date) -> int:
    return day.toordinal() - _EPOCH_DAY


def _date(number: int) -> date:
    return date.fromordinal(number + _EPOCH_DAY)


class ReportCache:
    """One connection to the cache file (or to memory when the file cannot be used)."""

    def __init__(self, conn: aiosqlite.Connection, where: str) -> None:
        self._conn = conn
        self.where = where
        self._zones: dict[str, int] = {}
        self._codes: dict[tuple[str, str], int] = {}
        self._statuses: dict[int, tuple[str, str]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: Path | None) -> AsyncIterator[ReportCache]:
        """The cache at `path`, rebuilt if unusable; in memory if `path` is None or unwritable."""
        conn = await _connect(path)
        try:
            yield cls(conn, str(path) if path is not None else ":memory:")
        finally:
            with contextlib.suppress(sqlite3.Error):
                await conn.close()

    async def days(self, tz: str, days: Sequence[date]) -> dict[date, CachedDay]:
        """The cached days among `days` for time zone `tz`."""
        if not days:
            return {}
        zone = await self._zone(tz)
        with translate("cannot read the report cache"):
            rows = await self._conn.execute_fetchall(
                "SELECT day, start_ms, end_ms, gaps, built_id, built_mark FROM days"
                " WHERE zone = ? AND day >= ? AND day <= ?",
                (zone, _number(min(days)), _number(max(days))),
            )
        wanted = set(days)
        found = (CachedDay(_date(row[0]), *row[1:]) for row in rows)
        return {entry.day: entry for entry in found if entry.day in wanted}

    async def forget(self, tz: str, days: Iterable[date]) -> None:
        """Drop cached days (no longer valid)."""
        zone = await self._zone(tz)
        doomed = [(zone, _number(day)) for day in days]
        if not doomed:
            return

        async def body(conn: aiosqlite.Connection) -> None:
            for table in ("days", "totals", "closing"):
                await conn.executemany(f"DELETE FROM {table} WHERE zone = ? AND day = ?", doomed)

        await self._write(body)

    async def confirm(self, tz: str, days: Iterable[CachedDay], built_id: int, mark: str) -> None:
        """Record that `days` were checked valid up to transition `built_id`.

        Only a day still at the build point that was checked moves on, so a day that another
        report has just replaced is never vouched for by a check made against its old rows.
        """
        zone = await self._zone(tz)
        rows = [(built_id, mark, zone, _number(day.day), day.built_id) for day in days]
        if not rows:
            return

        async def body(conn: aiosqlite.Connection) -> None:
            await conn.executemany(
                "UPDATE days SET built_id = ?, built_mark = ?"
                " WHERE zone = ? AND day = ? AND built_id = ?",
                rows,
            )

        await self._write(body)

    async def closing(self, tz: str, day: date) -> dict[tuple[int, str], str]:
        """The status of every (agent, kind) at the end of a cached day."""
        zone = await self._zone(tz)
        rows = await self._read_days(
            zone,
            [day],
            "SELECT agent, code FROM closing WHERE zone = ? AND day = ?",
            (zone, _number(day)),
        )
        result: dict[tuple[int, str], str] = {}
        for agent, code in rows:
            kind, status = await self._status(code)
            result[int(agent), kind] = status
        return result

    async def store(self, tz: str, entry: CachedDay, result: DayResult[int]) -> None:
        """Keep one computed day, replacing whatever was cached for it."""
        zone = await self._zone(tz)
        number = _number(entry.day)
        needed = {(kind, status) for _, kind, status in result.totals}
        needed |= {(kind, status) for (_, kind), status in result.closing.items()}
        codes = await self._codes_for(needed)
        totals = [
            (
                zone,
                number,
                agent,
                codes[kind, status],
                t.ms,
                t.uncertain_ms,
                t.entries,
                t.longest_ms,
            )
            for (agent, kind, status), t in result.totals.items()
        ]
        closing = [
            (zone, number, agent, codes[kind, status])
            for (agent, kind), status in result.closing.items()
        ]
        day_row = (
            zone,
            number,
            entry.start_ms,
            entry.end_ms,
            entry.gaps,
            entry.built_id,
            entry.built_mark,
        )

        async def body(conn: aiosqlite.Connection) -> None:
            for table in ("totals", "closing"):
                await conn.execute(f"DELETE FROM {table} WHERE zone = ? AND day = ?", day_row[:2])
            await conn.executemany("INSERT INTO totals VALUES (?, ?, ?, ?, ?, ?, ?, ?)", totals)
            await conn.executemany("INSERT INTO closing VALUES (?, ?, ?, ?)", closing)
            await conn.execute("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?)", day_row)

        await self._write(body)

    async def totals(
        self, tz: str, days: Sequence[date], *, by_agent: bool, by_day: bool
    ) -> list[tuple[int | None, date | None, str, str, Totals]]:
        """Sums over `days`: rows of (agent or None, day or None, kind, status, totals)."""
        if not days:
            return []
        zone = await self._zone(tz)
        keys = [name for name, wanted in (("agent", by_agent), ("day", by_day)) if wanted]
        select = ", ".join(
            [
                "agent" if by_agent else "NULL",
                "day" if by_day else "NULL",
                "code, sum(ms), sum(uncertain_ms), sum(entries), max(longest_ms)",
            ]
        )
        rows = await self._read_days(
            zone,
            days,
            f"SELECT {select} FROM totals"
            " WHERE zone = ? AND day IN (SELECT value FROM json_each(?))"
            f" GROUP BY {', '.join([*keys, 'code'])}",
            (zone, json.dumps([_number(day) for day in days])),
        )
        result: list[tuple[int | None, date | None, str, str, Totals]] = []
        for agent, number, code, *sums in rows:
            kind, status = await self._status(code)
            day = None if number is None else _date(number)
            result.append((agent, day, kind, status, Totals(*sums)))
        return result

    async def _read_days(
        self, zone: int, days: Sequence[date], sql: str, params: Sequence[object]
    ) -> list[Any]:
        """Run `sql` in one read transaction that also checks every one of `days` is cached.

        Another report (another process) may have found a day stale and dropped it since this
        one checked it: reading its rows now would silently leave the day out. CacheChanged
        says so, and the report starts again from a fresh snapshot.
        """
        numbers = json.dumps(sorted({_number(day) for day in days}))
        with translate("cannot read the report cache"):
            await self._conn.execute("BEGIN")
            try:
                present = list(
                    await self._conn.execute_fetchall(
                        "SELECT count(*) FROM days"
                        " WHERE zone = ? AND day IN (SELECT value FROM json_each(?))",
                        (zone, numbers),
                    )
                )
                if present[0][0] != len(json.loads(numbers)):
                    raise CacheChanged("a cached day was dropped by another report meanwhile")
                return list(await self._conn.execute_fetchall(sql, params))
            finally:
                await self._conn.execute("COMMIT")

    # --- codes ----------------------------------------------------------------------------------

    async def _zone(self, tz: str) -> int:
        zone = self._zones.get(tz)
        if zone is not None:
            return zone

        async def find() -> int | None:
            with translate("cannot read the report cache"):
                rows = list(
                    await self._conn.execute_fetchall("SELECT id FROM zones WHERE name = ?", (tz,))
                )
            return int(rows[0][0]) if rows else None

        async def body(conn: aiosqlite.Connection) -> None:
            await conn.execute("INSERT OR IGNORE INTO zones (name) VALUES (?)", (tz,))

        zone = await find()
        if zone is None:
            await self._write(body)
            zone = await find()
        assert zone is not None
        self._zones[tz] = zone
        return zone

    async def _codes_for(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        missing = pairs - set(self._codes)
        if missing:

            async def body(conn: aiosqlite.Connection) -> None:
                await conn.executemany(
                    "INSERT OR IGNORE INTO statuses (kind, status) VALUES (?, ?)", sorted(missing)
                )

            await self._write(body)
            await self._load_codes()
        return self._codes

    async def _status(self, code: int) -> tuple[str, str]:
        if code not in self._statuses:
            await self._load_codes()  # written by another report since this one began
        return self._statuses[code]

    async def _load_codes(self) -> None:
        with translate("cannot read the report cache"):
            rows = await self._conn.execute_fetchall("SELECT code, kind, status FROM statuses")
        self._statuses = {int(code): (str(kind), str(status)) for code, kind, status in rows}
        self._codes = {pair: code for code, pair in self._statuses.items()}

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[None]]) -> None:
        with translate("cannot update the report cache"):
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                await body(self._conn)
                await self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.execute("ROLLBACK")
                raise


async def _connect(path: Path | None) -> aiosqlite.Connection:
    if path is not None:
        for attempt in (1, 2):
            try:
                return await _prepare(await aiosqlite.connect(path, isolation_level=None))
            except (sqlite3.Error, OSError) as exc:
                # A damaged cache is thrown away and built again; a folder we cannot write to
                # leaves us with a cache in memory for this report.
                log.warning("report_cache.unusable", path=str(path), error=str(exc))
                if attempt == 1 and isinstance(exc, sqlite3.DatabaseError):
                    _remove(path)
                    continue
                break
    return await _prepare(await aiosqlite.connect(":memory:", isolation_level=None))


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def _prepare(conn: aiosqlite.Connection) -> aiosqlite.Connection:
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        if await _version(conn) != CACHE_VERSION:
            await conn.execute("BEGIN IMMEDIATE")
            # Read again under the write lock: another report may have just built it.
            if await _version(conn) == CACHE_VERSION:
                await conn.execute("COMMIT")
                return conn
            for table in _TABLES:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA:
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {CACHE_VERSION}")
            await conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            await conn.close()
        raise
    return conn
