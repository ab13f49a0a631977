"""The SQLite store: every query the monitor runs on its database.

The connection, migrations, transactions and backups are in database.py; the SQL text is in
queries.py. Agents are referred to by integer keys in the database (see schema.py); the store
keeps the id -> key map in memory, loaded at open and extended only after a commit.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from monitor.core.model import ActionRecord, Agent, Gap, Kind, StatusState, Transition
from monitor.store import queries as q
from monitor.store.batch_write import key_map
from monitor.store.database import Database, scalar, translate
from monitor.store.rows import (
    ExportRow,
    agent_from_row,
    agent_row,
    check_agent,
    check_gap,
    check_transitions,
    export_row,
    state_from_row,
    wire_rows,
)
from monitor.store.schema import HOUR_MS

log = structlog.get_logger(__name__)

_MAX_MS = 2**63 - 1


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Sizes of the store, for metrics."""

    transitions: int
    agents: int
    gaps: int
    actions: int
    file_bytes: int
    wal_bytes: int
    oldest_transition_ms: int | None


def _bounds(since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
    since = 0 if since_ms is None else since_ms
    until = _MAX_MS if until_ms is None else until_ms
    for name, value in (("since_ms", since), ("until_ms", until)):
        if type(value) is not int:
            raise ValueError(f"{name} must be an integer of epoch milliseconds, not {value!r}")
    return since, until


class Store(Database):
    """The monitor's SQLite database. Open it with `await Store.open(path)`."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
        super().__init__(path, conn, busy_timeout_ms)
        # Genesys user id -> agents.key, for every agent in the database.
        self._keys: dict[str, int] = {}
        # Kept up to date by write() and prune(): counting two million rows takes a while.
        self._transitions = 0

    async def _load(self) -> None:
        # Reading every agent and counting the transitions through an index also reads much of
        # the file, so a damaged database is reported at start rather than at the first write.
        async def body(conn: aiosqlite.Connection) -> tuple[dict[str, int], int]:
            keys = key_map(await conn.execute_fetchall("SELECT id, key FROM agents"))
            return keys, int(await scalar(conn, "SELECT count(*) FROM transitions"))

        self._keys, self._transitions = await self._read(f"cannot open {self.path}", body)

    def _learn_keys(self, new_keys: dict[str, int]) -> None:
        """Add committed agent keys to the map."""
        self._keys.update(new_keys)

    # --- transitions and current state --------------------------------------------------------

    async def write(self, transitions: Sequence[Transition]) -> int:
        """Store a batch in one transaction and return how many transitions were new.

        Replayed transitions (same natural key) are ignored; current_state moves to the newest
        state of each agent and kind, whatever order batches arrive in; unknown agents are
        created on the fly (roster sync fills in their details later).
        """
        batch = check_transitions(transitions)
        if not batch:
            return 0

        def committed(result: tuple[int, dict[str, int]]) -> None:
            inserted, new_keys = result
            self._learn_keys(new_keys)
            self._transitions += inserted

        inserted, _ = await self._batch("cannot write transitions", wire_rows(batch), committed)
        return inserted

    async def load_states(self) -> dict[tuple[str, Kind], StatusState]:
        """The stored current state of every agent and kind, to seed the tracker at start."""
        rows = await self._fetch(
            "cannot read current state",
            """
            SELECT a.id, c.kind, c.value, c.definition_id, c.since_ms, c.watermark_ms
            FROM current_state AS c JOIN agents AS a ON a.key = c.agent
            """,
        )
        return {(row[0], Kind(row[1])): state_from_row(*row[2:]) for row in rows}

    async def rebuild_current_state(self) -> int:
        """Recompute current_state from the transitions (when it was lost); returns its rows."""

        async def body(conn: aiosqlite.Connection) -> int:
            await conn.execute("DELETE FROM current_state")
            await conn.execute(q.REBUILD_STATE)
            return int(await scalar(conn, "SELECT count(*) FROM current_state"))

        count = await self._transaction("cannot rebuild current state", body)
        log.info("store.current_state_rebuilt", rows=count)
        return count

    # --- agents ---------------------------------------------------------------------------------

    async def upsert_agents(self, agents: Sequence[Agent], synced_ms: int) -> None:
        """Insert or update agents from a roster sync made at `synced_ms`."""
        checked = [check_agent(agent) for agent in agents]
        _bounds(synced_ms, None)
        if not checked:
            return

        async def body(conn: aiosqlite.Connection) -> dict[str, int]:
            await conn.executemany(q.UPSERT_AGENT, [agent_row(a, synced_ms) for a in checked])
            ids = json.dumps([agent.id for agent in checked])
            return key_map(await conn.execute_fetchall(q.AGENT_KEYS, (ids,)))

        await self._transaction("cannot store agents", body, self._learn_keys)

    async def mark_agents_inactive(self, ids: Iterable[str], synced_ms: int) -> int:
        """Mark agents that left the roster as inactive; returns how many were known."""
        wanted = list(ids)
        if not all(isinstance(agent_id, str) for agent_id in wanted):
            raise ValueError("agent ids must be strings")
        _bounds(synced_ms, None)
        if not wanted:
            return 0

        async def body(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                """
                UPDATE agents SET state = 'inactive', synced_ms = ?
                WHERE id IN (SELECT value FROM json_each(?))
                """,
                (synced_ms, json.dumps(wanted)),
            )
            return max(cursor.rowcount, 0)

        return await self._transaction("cannot mark agents inactive", body)

    async def agents(self) -> list[Agent]:
        """Every agent in the database, including inactive ones, ordered by id."""
        rows = await self._fetch(
            "cannot read agents",
            """
            SELECT id, name, email, division_id, division_name, department, manager_id,
                queue_ids, state
            FROM agents ORDER BY id
            """,
        )
        return [agent_from_row(row) for row in rows]

    # --- gaps -------------------------------------------------------------------------------------

    async def record_gap(self, gap: Gap) -> None:
        """Record a gap; recording the same channel and start again extends it."""
        checked = check_gap(gap)

        async def body(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                """
                INSERT INTO gaps (channel_id, start_ms, end_ms, reason, agents)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (channel_id, start_ms) DO UPDATE SET
                    end_ms = max(gaps.end_ms, excluded.end_ms), reason = excluded.reason
                """,
                (
                    checked.channel_id,
                    checked.start_ms,
                    checked.end_ms,
                    checked.reason,
                    json.dumps(sorted(checked.agents)),
                ),
            )

        await self._transaction("cannot record a gap", body)

    async def gaps(self, since_ms: int | None = None, until_ms: int | None = None) -> list[Gap]:
        """Gaps that overlap [since_ms, until_ms), in start order."""
        since, until = _bounds(since_ms, until_ms)
        rows = await self._fetch(
            "cannot read gaps",
            """
            SELECT channel_id, start_ms, end_ms, reason, agents FROM gaps
            WHERE start_ms < ? AND end_ms >= ?
            ORDER BY start_ms, channel_id
            """,
            (until, since),
        )
        return [Gap(row[0], row[1], row[2], row[3], tuple(json.loads(row[4]))) for row in rows]

    # --- the audit trail and schedule runs -------------------------------------------------------

    async def record_actions(self, records: Sequence[ActionRecord]) -> None:
        """Append audit rows (dry runs and skips included), in one transaction."""
        if not records:
            return
        agents = list(dict.fromkeys(r.agent_id for r in records))

        async def body(conn: aiosqlite.Connection) -> dict[str, int]:
            await conn.executemany(
                "INSERT INTO agents (id) VALUES (?) ON CONFLICT (id) DO NOTHING",
                [(a,) for a in agents if a not in self._keys],
            )
            keys = {**self._keys}
            missing = [a for a in agents if a not in keys]
            if missing:
                keys.update(
                    key_map(await conn.execute_fetchall(q.AGENT_KEYS, (json.dumps(missing),)))
                )
            await conn.executemany(
                """
                INSERT INTO actions (at_ms, actor, agent, from_value, to_value, definition_id,
                    dry_run, outcome, error, request_id, event_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    (
                        r.at_ms,
                        r.actor,
                        keys[r.agent_id],
                        r.from_value,
                        r.to_value,
                        r.definition_id,
                        int(r.dry_run),
                        r.outcome,
                        r.error,
                        r.request_id,
                        r.event_ms,
                    )
                    for r in records
                ],
            )
            return {a: keys[a] for a in missing}

        # The key map grows only once the rows are committed.
        await self._transaction("cannot write the audit trail", body, self._learn_keys)

    async def actions(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        *,
        agent_id: str | None = None,
        actor: str | None = None,
        limit: int = 10_000,
    ) -> list[ActionRecord]:
        """Audit rows in [since, until), newest last, optionally for one agent or actor."""
        since, until = _bounds(since_ms, until_ms)
        sql = """
            SELECT a.at_ms, a.actor, g.id, a.from_value, a.to_value, a.definition_id,
                a.dry_run, a.outcome, a.request_id, a.error, a.event_ms
            FROM actions a JOIN agents g ON g.key = a.agent
            WHERE a.at_ms >= ? AND a.at_ms < ?
        """
        params: list[Any] = [since, until]
        if agent_id is not None:
            sql += " AND g.id = ?"
            params.append(agent_id)
        if actor is not None:
            sql += " AND a.actor = ?"
            params.append(actor)
        sql += " ORDER BY a.at_ms, a.id LIMIT ?"
        params.append(limit)
        rows = await self._fetch("cannot read the audit trail", sql, params)
        return [
            ActionRecord(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                bool(row[6]),
                row[7],
                row[8],
                row[9],
                row[10],
            )
            for row in rows
        ]

    async def record_schedule_run(
        self, schedule: str, due_ms: int, run_ms: int, outcome: str, detail: str = ""
    ) -> bool:
        """Note that a schedule's run due at `due_ms` happened (or was skipped); False when that
        run was already noted (a restart must neither repeat nor skip a run)."""

        async def body(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(
                "INSERT INTO schedule_runs (schedule, due_ms, run_ms, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (schedule, due_ms) DO NOTHING",
                (schedule, due_ms, run_ms, outcome, detail),
            )
            return cursor.rowcount > 0

        return await self._transaction("cannot record a schedule run", body)

    async def last_schedule_run(self, schedule: str) -> tuple[int, int, str, str] | None:
        """(due_ms, run_ms, outcome, detail) of the latest noted run of a schedule."""
        rows = await self._fetch(
            "cannot read schedule runs",
            "SELECT due_ms, run_ms, outcome, detail FROM schedule_runs WHERE schedule = ?"
            " ORDER BY due_ms DESC LIMIT 1",
            (schedule,),
        )
        return None if not rows else (rows[0][0], rows[0][1], rows[0][2], rows[0][3])

    # --- small facts --------------------------------------------------------------------------

    async def set_meta(self, key: str, value: str) -> None:
        """Keep `value` under `key` across restarts."""

        async def body(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

        await self._transaction("cannot write meta", body)

    async def meta(self, key: str) -> str | None:
        rows = await self._fetch("cannot read meta", "SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    # --- housekeeping -----------------------------------------------------------------------------

    async def prune(self, before_ms: int, chunk: int = 5000) -> int:
        """Delete transitions and gaps older than `before_ms`, `chunk` rows per transaction.

        Returns how many rows were deleted. Each chunk is a transaction of its own, and a write
        waiting for the connection goes before the next chunk, so the writer is never held up
        for long. The transitions that current_state is built on are kept whatever their age.
        """
        before, _ = _bounds(before_ms, None)
        if type(chunk) is not int or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
        await self._ensure_current_state()

        def shrink(deleted: int) -> None:
            self._transitions -= deleted

        transitions = await self._delete_chunks(
            q.PRUNABLE_TRANSITIONS, q.DELETE_TRANSITION, before, chunk, shrink
        )
        gaps = await self._delete_chunks(q.PRUNABLE_GAPS, q.DELETE_GAP, before, chunk, None)
        log.info("store.pruned", before_ms=before, transitions=transitions, gaps=gaps)
        return transitions + gaps

    async def index_hours(self, before_ms: int) -> int:
        """Put into agent_index the transitions of every hour that ended by `before_ms`; returns
        how many. Each hour is a transaction of its own, so a waiting write goes between two."""
        limit = before_ms // HOUR_MS * HOUR_MS

        async def body(conn: aiosqlite.Connection) -> int | None:
            until = int(await scalar(conn, q.INDEXED_UNTIL))
            if until >= limit:
                return None
            first = await scalar(
                conn, "SELECT min(event_ms) FROM transitions WHERE event_ms >= ?", (until,)
            )
            # Up to the end of the next hour that holds transitions: empty hours take no turn.
            end = limit if first is None else min(limit, (first // HOUR_MS + 1) * HOUR_MS)
            cursor = await conn.execute(q.INDEX_HOURS, (until, end))
            await conn.execute(q.SET_INDEXED_UNTIL, (end,))
            return max(cursor.rowcount, 0)

        total = 0
        while (indexed := await self._transaction("cannot index transitions", body)) is not None:
            total += indexed
        if total:
            log.info("store.hours_indexed", transitions=total, before_ms=limit)
        return total

    async def _delete_chunks(
        self,
        select: str,
        delete: str,
        before: int,
        chunk: int,
        committed: Callable[[int], None] | None,
    ) -> int:
        async def body(conn: aiosqlite.Connection) -> int:
            ids = list(await conn.execute_fetchall(select, (before, chunk)))
            if ids:
                await conn.executemany(delete, ids)
            return len(ids)

        total = 0
        while True:
            deleted = await self._transaction("cannot prune", body, committed)
            total += deleted
            if deleted < chunk:
                return total

    async def _ensure_current_state(self) -> None:
        # Pruning relies on current_state to know what to keep; if it has been lost, pruning
        # first would delete the transitions it is rebuilt from.
        async def body(conn: aiosqlite.Connection) -> bool:
            lost = await scalar(
                conn,
                "SELECT NOT EXISTS (SELECT 1 FROM current_state) "
                "AND EXISTS (SELECT 1 FROM transitions)",
            )
            return bool(lost)

        if await self._read("cannot read current state", body):
            log.warning("store.current_state_missing", action="rebuilding before pruning")
            await self.rebuild_current_state()

    # --- reading history --------------------------------------------------------------------------

    async def export(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        agent_id: str | None = None,
        *,
        chunk: int = 500,
    ) -> AsyncGenerator[ExportRow, None]:
        """Stream transitions with event time in [since_ms, until_ms), in event-time order.

        Rows are fetched `chunk` at a time from one read snapshot, so an export of any size
        holds only one chunk in memory and never blocks the writer. Close the iterator (for
        example with `contextlib.aclosing`) when stopping early, to release the snapshot.
        """
        since, until = _bounds(since_ms, until_ms)
        if type(chunk) is not int or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
        if since >= until:
            return
        key = None
        if agent_id is not None:
            key = self._keys.get(agent_id)
            if key is None:
                return
        async with self._reader() as conn:
            with translate("cannot export transitions"):
                if key is None:
                    cursor = await conn.execute(q.EXPORT_ALL, (since, until))
                else:
                    # Only the hours that hold data, so an open-ended range stays a short list.
                    first, last = await self._span(conn)
                    if first is None or last is None:
                        return
                    cursor = await conn.execute(
                        q.EXPORT_AGENT, q.agent_range(key, max(since, first), min(until, last + 1))
                    )
                try:
                    while rows := await cursor.fetchmany(chunk):
                        for row in rows:
                            yield export_row(row)
                finally:
                    await cursor.close()

    @staticmethod
    async def _span(conn: aiosqlite.Connection) -> tuple[int | None, int | None]:
        # Two subqueries: SQLite answers min() or max() alone from the index's ends, but a
        # query asking for both scans the whole index.
        rows = list(
            await conn.execute_fetchall(
                "SELECT (SELECT min(event_ms) FROM transitions),"
                " (SELECT max(event_ms) FROM transitions)"
            )
        )
        return rows[0][0], rows[0][1]

    async def stats(self) -> StoreStats:
        """Row counts, file sizes and the oldest transition time."""

        async def body(conn: aiosqlite.Connection) -> tuple[Any, ...]:
            rows = await conn.execute_fetchall(
                """
                SELECT (SELECT count(*) FROM agents), (SELECT count(*) FROM gaps),
                    (SELECT count(*) FROM actions), (SELECT min(event_ms) FROM transitions)
                """
            )
            return tuple(next(iter(rows)))

        agents, gaps, actions, oldest = await self._read("cannot read store statistics", body)
        return StoreStats(
            transitions=self._transitions,
            agents=agents,
            gaps=gaps,
            actions=actions,
            file_bytes=_size(self.path),
            wal_bytes=_size(self.path.with_name(self.path.name + "-wal")),
            oldest_transition_ms=oldest,
        )


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
