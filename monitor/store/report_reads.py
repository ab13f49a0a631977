"""The reads the reports share, each on a read-only connection inside the caller's snapshot.

The status in force when a day opens comes from current_state for every agent whose present
state began before that instant (late rows are always older than the current state, so nothing
can lie in between). The rest are found by grouped scans of the time index, the day before first
and then wider windows while many are left, and the last few by agent (queries.AGENT_ROWS).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite

from monitor.core.model import Agent, Gap
from monitor.core.statustime import Day, DayAccumulator, DayResult, GapIndex
from monitor.core.timeline import Mark
from monitor.store.database import scalar
from monitor.store.queries import AGENT_ROWS, agent_range
from monitor.store.rows import agent_from_row

DAY_MS: Final = 86_400_000
MAX_DAYS: Final = 400
# service.ALIVE_KEY: the daemon notes the time there every 30 s while it runs. Longer silence
# means nothing was being watched since; that stretch is treated as a gap for every agent
# until the daemon, once back, records the real one.
ALIVE_KEY: Final = "alive_ms"
SILENT_AFTER_MS: Final = 90_000
NOT_RUNNING: Final = "monitor not running"


def time_zone(name: str) -> ZoneInfo:
    """The zone called `name`; ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


async def snapshot(conn: aiosqlite.Connection) -> tuple[int, str]:
    """The largest transition id of this snapshot and its mark (event time and agent)."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT id, event_ms, agent FROM transitions"
            " WHERE id = (SELECT max(id) FROM transitions)"
        )
    )
    if not rows:
        return 0, ""
    return int(rows[0][0]), f"{rows[0][1]}:{rows[0][2]}"


async def compute_day(
    conn: aiosqlite.Connection,
    start_ms: int,
    end_ms: int,
    opening: dict[tuple[int, str], str],
    gaps: GapIndex[int],
) -> DayResult[int]:
    accumulator = DayAccumulator(start_ms, end_ms, opening, gaps)
    # transitions_natural starts with event_ms and covers these columns: no table reads, no sort.
    cursor = await conn.execute(
        "SELECT agent, kind, event_ms, to_value FROM transitions"
        " WHERE event_ms >= ? AND event_ms < ? ORDER BY event_ms",
        (start_ms, end_ms),
    )
    try:
        while rows := await cursor.fetchmany(5000):
            accumulator.add(cast("Iterable[tuple[int, str, int, str]]", rows))
    finally:
        await cursor.close()
    return accumulator.finish()


# Below this many agents still without an opening status, each is looked up through the
# per-agent index; from this many on, a grouped scan of the time index is cheaper than one
# seek per agent and hour. A new database, or a Monday after a quiet weekend, has every agent
# pending at once.
_ONE_BY_ONE: Final = 64
_LATEST_BY_AGENT: Final = (
    # printf() makes (event time, value) one sortable text, so max() picks the latest row and,
    # at one time, the larger value.
    "SELECT agent, kind, max(printf('%015d', event_ms) || to_value) FROM transitions"
    " WHERE event_ms >= ? AND event_ms < ? GROUP BY agent, kind"
)


async def openings(conn: aiosqlite.Connection, at_ms: int) -> dict[tuple[int, str], str]:
    """The status of every agent and kind at instant `at_ms`, for those known by then."""
    opening: dict[tuple[int, str], str] = {}
    # Agent -> the kinds whose status at `at_ms` is still to be found.
    pending: dict[int, set[str]] = {}
    for agent, kind, value, since_ms in await conn.execute_fetchall(
        "SELECT agent, kind, value, since_ms FROM current_state"
    ):
        if since_ms < at_ms:
            opening[agent, kind] = value
        else:
            pending.setdefault(agent, set()).add(kind)
    oldest = await scalar(conn, "SELECT min(event_ms) FROM transitions") if pending else None
    if oldest is None:
        return opening
    # Grouped scans of the time index, the day before first, then windows eight times wider
    # each, while many agents are left.
    upper, width = at_ms, DAY_MS
    while pending and upper > oldest and (upper == at_ms or len(pending) >= _ONE_BY_ONE):
        lower = max(upper - width, oldest)
        for agent, kind, packed in await conn.execute_fetchall(_LATEST_BY_AGENT, (lower, upper)):
            kinds = pending.get(agent)
            if kinds is not None and kind in kinds:
                opening[agent, kind] = packed[15:]
                kinds.discard(kind)
                if not kinds:
                    del pending[agent]
        upper, width = lower, width * 8
    for agent, kinds in sorted(pending.items()):
        found = await last_marks(conn, agent, upper, oldest, kinds)
        for kind, found_mark in found.items():
            opening[agent, kind] = found_mark.value
    return opening


async def marks(conn: aiosqlite.Connection, agent: int, start_ms: int, end_ms: int) -> list[Mark]:
    if end_ms <= start_ms:
        return []
    rows = await conn.execute_fetchall(AGENT_ROWS, agent_range(agent, start_ms, end_ms))
    return [Mark(row[0], row[1], row[2], row[3] or None, row[4]) for row in rows]


async def last_marks(
    conn: aiosqlite.Connection,
    agent: int,
    before_ms: int,
    oldest_ms: int | None,
    kinds: set[str],
) -> dict[str, Mark]:
    """The last row of each of `kinds` before `before_ms`, looking back in widening steps."""
    found: dict[str, Mark] = {}
    upper, width = before_ms, DAY_MS
    while oldest_ms is not None and upper > oldest_ms and kinds - set(found):
        lower = max(upper - width, oldest_ms)
        best: dict[str, Mark] = {}
        for mark in await marks(conn, agent, lower, upper):
            if mark.kind in kinds and mark.kind not in found:
                held = best.get(mark.kind)
                if held is None or rank(mark) > rank(held):
                    best[mark.kind] = mark
        found.update(best)
        upper, width = lower, width * 8
    return found


def rank(mark: Mark) -> tuple[int, str, str]:
    return mark.event_ms, mark.value, mark.definition_id or ""


async def keys(conn: aiosqlite.Connection) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in await conn.execute_fetchall("SELECT id, key FROM agents")}


async def agents(conn: aiosqlite.Connection) -> dict[int, Agent]:
    rows = await conn.execute_fetchall(
        "SELECT key, id, name, email, division_id, division_name, department, manager_id,"
        " queue_ids, state FROM agents"
    )
    return {int(row[0]): agent_from_row(row[1:]) for row in rows}


async def gaps(conn: aiosqlite.Connection, since_ms: int, until_ms: int, now_ms: int) -> list[Gap]:
    """Recorded gaps overlapping [since_ms, until_ms), and the silence since the daemon was
    last alive if it is not running now."""
    rows = await conn.execute_fetchall(
        "SELECT channel_id, start_ms, end_ms, reason, agents FROM gaps"
        " WHERE start_ms < ? AND end_ms > ? ORDER BY start_ms, channel_id",
        (until_ms, since_ms),
    )
    gaps = [Gap(r[0], r[1], r[2], r[3], tuple(json.loads(r[4]))) for r in rows]
    alive = await scalar(conn, "SELECT value FROM meta WHERE key = ?", (ALIVE_KEY,))
    if alive is not None and str(alive).isdigit():
        last_seen = int(alive)
        if now_ms - last_seen > SILENT_AFTER_MS and last_seen < until_ms:
            gaps.append(Gap("*", max(last_seen, since_ms), now_ms, NOT_RUNNING))
    return gaps


def concerns(gap: Gap, agent_id: str) -> bool:
    """Whether `gap` covers `agent_id`: a gap of the whole monitor, or of a channel it was on."""
    return gap.channel_id == "*" or not gap.agents or agent_id in gap.agents


def gap_index(gaps: Sequence[Gap], day: Day, keys: dict[str, int]) -> GapIndex[int]:
    every = [(g.start_ms, g.end_ms) for g in gaps if g.channel_id == "*" or not g.agents]
    some = [
        ([keys[a] for a in g.agents if a in keys], g.start_ms, g.end_ms)
        for g in gaps
        if g.channel_id != "*" and g.agents
    ]
    return GapIndex(day.start_ms, day.end_ms, every, some)


def signature(gaps: Sequence[Gap], day: Day) -> str:
    """What a cached day depends on among the gaps: those overlapping it, as they are now."""
    relevant = sorted(
        (g.channel_id, g.start_ms, g.end_ms, sorted(g.agents))
        for g in gaps
        if g.start_ms < day.end_ms and g.end_ms > day.start_ms
    )
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()[:16]
