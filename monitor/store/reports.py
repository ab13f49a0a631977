"""Time in status per agent, division, queue or day: the status-time report.

It reads one consistent snapshot of the database through a read-only connection of its own
(Store._reader), so it never holds up the writer and sees every table at the same instant.

Status time (see core.statustime for what is counted): each local day in the report's time zone
is computed once from the transitions in event-time order (the covering natural-key index yields
them sorted, so SQLite sorts nothing) and its totals are cached per (agent, kind, status)
(report_cache.py explains why and when a cached day is recomputed); SQL then sums the days.
Days not yet over are computed afresh up to `now` and never cached.

The status in force when a day opens comes from the cached end of the day before, or else from
the database (report_reads.openings).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import aiosqlite

from monitor.core.model import Agent, Gap, Kind, Presence, RoutingStatus
from monitor.core.statustime import Day, DayResult, Totals, days_between
from monitor.store import report_reads as reads
from monitor.store.database import scalar, translate
from monitor.store.report_cache import CacheChanged, CachedDay, ReportCache, cache_path
from monitor.store.report_reads import MAX_DAYS, time_zone
from monitor.store.sqlite import Store

GROUPS: Final = ("agent", "division", "queue", "day")
_ATTEMPTS: Final = 3

_KIND_ORDER = {Kind.PRESENCE.value: 0, Kind.ROUTING.value: 1}
_STATUS_ORDER = {value: n for n, value in enumerate([*Presence, *RoutingStatus])}


@dataclass(frozen=True, slots=True)
class StatusTimeRow:
    """Totals of one status for one group (its columns in `group`, in the order of `by`)."""

    group: dict[str, str]
    kind: str
    status: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class StatusTimeReport:
    first: date
    last: date
    timezone: str
    by: tuple[str, ...]
    now_ms: int
    rows: list[StatusTimeRow]
    gaps: list[Gap]


def check_by(by: Iterable[str]) -> tuple[str, ...]:
    """The grouping columns, checked and without repeats; ValueError otherwise."""
    wanted = tuple(dict.fromkeys(part.strip().lower() for part in by if part.strip()))
    unknown = [part for part in wanted if part not in GROUPS]
    if unknown or not wanted:
        raise ValueError(f"--by takes one or more of {', '.join(GROUPS)}, not {','.join(by)!r}")
    return wanted


# --- status time -----------------------------------------------------------------------------


async def status_time(
    store: Store,
    first: date,
    last: date,
    tz: str,
    now_ms: int,
    by: Sequence[str] = ("agent",),
    *,
    cache: bool = True,
) -> StatusTimeReport:
    """Time in each status from local day `first` to `last` (both included) in zone `tz`."""
    groups = check_by(by)
    zone = time_zone(tz)
    days = days_between(first, last, zone)
    if len(days) > MAX_DAYS:
        raise ValueError(f"a report covers at most {MAX_DAYS} days, not {len(days)}")
    before = days_between(first - timedelta(days=1), first - timedelta(days=1), zone)[0]
    for attempt in range(_ATTEMPTS):
        try:
            return await _status_time(store, before, days, tz, now_ms, groups, cache=cache)
        except CacheChanged:
            if attempt + 1 == _ATTEMPTS:
                # Other reports keep invalidating days: count without the shared cache.
                return await _status_time(store, before, days, tz, now_ms, groups, cache=False)
    raise AssertionError("unreachable")


async def _status_time(
    store: Store,
    before: Day,
    days: list[Day],
    tz: str,
    now_ms: int,
    groups: tuple[str, ...],
    *,
    cache: bool,
) -> StatusTimeReport:
    by_agent = any(g in groups for g in ("agent", "division", "queue"))
    async with (
        store._reader() as conn,
        ReportCache.open(cache_path(store.path) if cache else None) as kept,
    ):
        with translate("cannot read the report's data"):
            await conn.execute("BEGIN")  # one snapshot for every read below
            try:
                agents = await reads.agents(conn)
                gaps = await reads.gaps(conn, before.start_ms, days[-1].end_ms, now_ms)
                fresh, cached = await _ensure_days(conn, kept, tz, before, days, gaps, now_ms)
            finally:
                await conn.execute("COMMIT")
        summed = await kept.totals(tz, cached, by_agent=by_agent, by_day="day" in groups)
    for day, result in fresh:
        summed += _sum_fresh(day, result, by_agent=by_agent, by_day="day" in groups)
    rows = _group(summed, groups, agents)
    shown = [g for g in gaps if g.start_ms < days[-1].end_ms and g.end_ms > days[0].start_ms]
    return StatusTimeReport(days[0].date, days[-1].date, tz, groups, now_ms, rows, shown)


async def _ensure_days(
    conn: aiosqlite.Connection,
    kept: ReportCache,
    tz: str,
    before: Day,
    days: list[Day],
    gaps: list[Gap],
    now_ms: int,
) -> tuple[list[tuple[Day, DayResult[int]]], list[date]]:
    """Make sure every closed day of `days` is in the cache; compute the open one (today).

    Returns the days computed but not cached, and the dates of the cached ones.
    """
    built_id, mark = await reads.snapshot(conn)
    keys = await reads.keys(conn)
    closed = [day for day in (before, *days) if day.end_ms <= now_ms]
    valid = await _valid_days(conn, kept, tz, closed, gaps, built_id, mark)
    fresh: list[tuple[Day, DayResult[int]]] = []
    cached: list[date] = []
    opening: dict[tuple[int, str], str] | None = None
    previous = before
    for day in days:
        if day.start_ms >= now_ms:
            break  # nothing can be known about a day that has not begun
        if day.date in valid:
            cached.append(day.date)
            opening, previous = None, day
            continue
        if opening is None:
            if previous.date in valid:
                opening = await kept.closing(tz, previous.date)
            else:
                opening = await reads.openings(conn, day.start_ms)
        end = min(day.end_ms, now_ms)
        result = await reads.compute_day(
            conn, day.start_ms, end, opening, reads.gap_index(gaps, day, keys)
        )
        if day.end_ms <= now_ms:
            signature = reads.signature(gaps, day)
            entry = CachedDay(day.date, day.start_ms, day.end_ms, signature, built_id, mark)
            await kept.store(tz, entry, result)
            valid[day.date] = entry
            cached.append(day.date)
        else:
            fresh.append((day, result))
        opening, previous = result.closing, day
    return fresh, cached


async def _valid_days(
    conn: aiosqlite.Connection,
    kept: ReportCache,
    tz: str,
    days: Sequence[Day],
    gaps: list[Gap],
    built_id: int,
    mark: str,
) -> dict[date, CachedDay]:
    """The cached days among `days` that are still right; the others are dropped."""
    found = await kept.days(tz, [day.date for day in days])
    wanted = {day.date: day for day in days}
    good: dict[date, CachedDay] = {}
    bad: list[date] = []
    for build in {(entry.built_id, entry.built_mark) for entry in found.values()}:
        changed_from = await _changed_since(conn, build[0], build[1], built_id)
        for iso, entry in found.items():
            if (entry.built_id, entry.built_mark) != build:
                continue
            day = wanted[iso]
            ok = (
                changed_from is not None
                and changed_from >= day.end_ms
                and (entry.start_ms, entry.end_ms) == (day.start_ms, day.end_ms)
                and entry.gaps == reads.signature(gaps, day)
            )
            if ok:
                good[iso] = entry
            else:
                bad.append(iso)
    await kept.forget(tz, bad)
    await kept.confirm(tz, [e for e in good.values() if e.built_id != built_id], built_id, mark)
    return good


async def _changed_since(
    conn: aiosqlite.Connection, since_id: int, since_mark: str, snapshot_id: int
) -> int | None:
    """The earliest event time among transitions written after `since_id` (a large number when
    there are none), or None when the cache cannot be vouched for: the row at `since_id` is not
    the one it was (another database) or lies beyond this snapshot."""
    if since_id > snapshot_id:
        return None
    if since_id > 0:
        rows = list(
            await conn.execute_fetchall(
                "SELECT event_ms, agent FROM transitions WHERE id = ?", (since_id,)
            )
        )
        if not rows or f"{rows[0][0]}:{rows[0][1]}" != since_mark:
            return None
    # NOT INDEXED: walk the rows after `since_id` by rowid. Left to itself, SQLite answers min()
    # from the event-time index and scans all of it when no row qualifies.
    earliest = await scalar(
        conn, "SELECT min(event_ms) FROM transitions NOT INDEXED WHERE id > ?", (since_id,)
    )
    return 2**63 - 1 if earliest is None else int(earliest)


# --- grouping ---------------------------------------------------------------------------------

_Summed = list[tuple[int | None, date | None, str, str, Totals]]


def _sum_fresh(day: Day, result: DayResult[int], *, by_agent: bool, by_day: bool) -> _Summed:
    """A computed day's totals in the shape the cache's sums have."""
    summed: dict[tuple[int | None, date | None, str, str], Totals] = {}
    for (agent, kind, status), totals in result.totals.items():
        key = (agent if by_agent else None, day.date if by_day else None, kind, status)
        held = summed.get(key)
        if held is None:
            summed[key] = held = Totals()
        held.add(totals)
    return [(*key, totals) for key, totals in summed.items()]


_Columns = tuple[tuple[str, str], ...]


def _group(summed: _Summed, by: tuple[str, ...], agents: dict[int, Agent]) -> list[StatusTimeRow]:
    groups: dict[tuple[_Columns, str, str], Totals] = {}
    # An agent's columns are the same for each of its statuses: worked out once per agent/day.
    known: dict[tuple[int | None, date | None], list[_Columns]] = {}
    for agent_key, day, kind, status, totals in summed:
        choices = known.get((agent_key, day))
        if choices is None:
            agent = agents.get(agent_key) if agent_key is not None else None
            choices = known[agent_key, day] = _columns(by, agent, day)
        for columns in choices:
            key = (columns, kind, status)
            held = groups.get(key)
            if held is None:
                groups[key] = held = Totals()
            held.add(totals)
    ordered = sorted(
        groups.items(),
        key=lambda item: (
            tuple(value.casefold() for _, value in item[0][0]),
            _KIND_ORDER.get(item[0][1], 2),
            _STATUS_ORDER.get(item[0][2], len(_STATUS_ORDER)),
            item[0][2],
        ),
    )
    return [
        StatusTimeRow(dict(columns), kind, status, totals)
        for (columns, kind, status), totals in ordered
    ]


def _columns(by: tuple[str, ...], agent: Agent | None, day: date | None) -> list[_Columns]:
    """The group columns of one agent's (and day's) totals: several for an agent in several
    queues, which counts in each."""
    options: list[list[_Columns]] = []
    for name in by:
        if name == "agent":
            agent_id, agent_name = (agent.id, agent.name) if agent else ("", "")
            options.append([(("agent_id", agent_id), ("agent_name", agent_name))])
        elif name == "division":
            label = (agent.division_name or agent.division_id) if agent else ""
            options.append([(("division", label),)])
        elif name == "queue":
            queues = agent.queue_ids if agent and agent.queue_ids else ("",)
            options.append([(("queue", queue),) for queue in queues])
        else:
            options.append([(("day", day.isoformat() if day else ""),)])
    combined: list[_Columns] = [()]
    for choices in options:
        combined = [done + choice for done in combined for choice in choices]
    return combined
