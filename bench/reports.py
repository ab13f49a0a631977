"""How long the status-time and agent-day reports take on a month of a 1,000-agent contact centre.

The month is generated once (a working model: shifts five days a week, logins, calls that move
routing IDLE <-> INTERACTING, the odd NOT_RESPONDING, breaks and a meal, a few late rows, channel
gaps and one monitor-wide outage), about 2.5 million transitions, and cached under bench/.cache/.
Each run copies it, so the reports' per-day cache (store/report_cache.py) starts empty:

- cold: the first status-time report over the month, which computes and caches every day;
- warm: the same report again, and by division, by queue and by day (the target: under 1 s each);
- the agent-day report (one agent, one day; target under 1 s), for a few agents.

Run: .venv/bin/python -m bench.reports [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.dbfill import finish_building, start_building
from monitor.core.statustime import day_start_ms
from monitor.store import SCHEMA_VERSION, Store
from monitor.store.agent_day import agent_timeline
from monitor.store.reports import status_time
from monitor.store.schema import MIGRATIONS

CACHE = Path(__file__).parent / ".cache"
TZ = "Europe/Berlin"
ZONE = ZoneInfo(TZ)
MINUTE = 60_000
TARGET_S = 1.0
FIRST = date(2026, 3, 1)  # a month with a DST change in Berlin


def _generate(
    agents: int, days: int, seed: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(transitions rows sorted by event time, agent rows)."""
    rng = random.Random(seed)
    people = [
        (
            key,
            f"agent-{key:05d}",
            f"Agent {key:05d}",
            f"div-{key % 8}",
            f"Division {key % 8}",
            json.dumps(sorted({f"queue-{key % 20}", f"queue-{(key * 7) % 20}"})),
        )
        for key in range(1, agents + 1)
    ]
    rows: list[tuple[Any, ...]] = []

    def add(key: int, kind: str, value: str, when: int, late: int = 0) -> None:
        rows.append((key, kind, value, when, when + rng.randrange(20, 400), late))

    for key in range(1, agents + 1):
        off_days = {rng.randrange(7), rng.randrange(7)}
        shift_start = rng.choice([6, 7, 8, 9, 10, 12, 14]) * 60 * MINUTE
        add(key, "presence", "OFFLINE", day_start_ms(FIRST - timedelta(days=3), ZONE))
        add(key, "routing", "OFF_QUEUE", day_start_ms(FIRST - timedelta(days=3), ZONE))
        for n in range(days):
            day = FIRST + timedelta(days=n)
            if day.weekday() in off_days:
                continue
            t = day_start_ms(day, ZONE) + shift_start + rng.randrange(-10, 10) * MINUTE
            end = t + 8 * 60 * MINUTE
            add(key, "presence", "AVAILABLE", t)
            t += rng.randrange(1, 5) * MINUTE
            add(key, "presence", "ON_QUEUE", t)
            add(key, "routing", "IDLE", t)
            pauses = sorted(rng.sample(range(t + 90 * MINUTE, end - 60 * MINUTE, MINUTE), 3))
            kinds = ["BREAK", "MEAL", "BREAK"]
            while t < end:
                t += rng.randrange(20_000, 300_000)
                if pauses and t >= pauses[0]:
                    pauses.pop(0)
                    what = kinds.pop(0)
                    add(key, "presence", what, t)
                    add(key, "routing", "OFF_QUEUE", t)
                    t += (30 if what == "MEAL" else 15) * MINUTE + rng.randrange(-2, 4) * MINUTE
                    add(key, "presence", "ON_QUEUE", t)
                    add(key, "routing", "IDLE", t)
                    continue
                if rng.random() < 0.02:
                    add(key, "routing", "NOT_RESPONDING", t)
                    t += rng.randrange(10_000, 60_000)
                    add(key, "routing", "IDLE", t)
                    continue
                add(key, "routing", "INTERACTING", t)
                t += rng.randrange(90_000, 600_000)
                # Now and then the end of a call reaches us after a newer change: a late row.
                add(key, "routing", "IDLE", t, late=int(rng.random() < 0.002))
            t += rng.randrange(1, 3) * MINUTE
            add(key, "presence", "OFFLINE", t)
            add(key, "routing", "OFF_QUEUE", t)
    rows.sort(key=lambda row: row[3])
    return rows, people


def build(agents: int, days: int) -> Path:
    """The cached month for `agents` agents and `days` days, built if missing."""
    CACHE.mkdir(exist_ok=True)
    schema = hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[:8]
    path = CACHE / f"reports-v{SCHEMA_VERSION}-{schema}-{agents}-{days}-{FIRST}.db"
    if path.exists():
        return path
    started = time.perf_counter()
    rows, people = _generate(agents, days, seed=1)
    building, conn = start_building(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO agents (key, id, name, division_id, division_name, queue_ids, state)"
        " VALUES (?, ?, ?, ?, ?, ?, 'active')",
        people,
    )
    # In event-time order, the natural-key index only ever grows at its right edge.
    conn.executemany(
        "INSERT OR IGNORE INTO transitions (agent, kind, to_value, event_ms, seen_ms, source, late)"
        " VALUES (?, ?, ?, ?, ?, 'live', ?)",
        rows,
    )
    rng = random.Random(2)
    gaps = []
    for _ in range(days // 3):
        start = day_start_ms(FIRST + timedelta(days=rng.randrange(days)), ZONE)
        start += rng.randrange(8 * 60, 18 * 60) * MINUTE
        members = [f"agent-{k:05d}" for k in rng.sample(range(1, agents + 1), min(agents, 50))]
        gaps.append(
            (
                f"channel-{rng.randrange(2)}",
                start,
                start + rng.randrange(1, 10) * MINUTE,
                "closed",
                json.dumps(members),
            )
        )
    outage = day_start_ms(FIRST + timedelta(days=days // 2), ZONE) + 11 * 60 * MINUTE
    gaps.append(("*", outage, outage + 20 * MINUTE, "monitor not running", "[]"))
    conn.executemany("INSERT OR IGNORE INTO gaps VALUES (NULL, ?, ?, ?, ?, ?)", gaps)
    conn.execute("COMMIT")
    finish_building(conn, building, path, day_start_ms(FIRST + timedelta(days=days), ZONE))
    print(f"built {path.name}: {len(rows):,} transitions in {time.perf_counter() - started:.0f} s")
    return path


async def timed(what: Callable[[], Awaitable[object]], repeat: int = 1) -> tuple[float, object]:
    """The median time of `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await what()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def measure(path: Path, days: int) -> dict[str, Any]:
    last = FIRST + timedelta(days=days - 1)
    now = day_start_ms(last + timedelta(days=2), ZONE)
    figures: dict[str, Any] = {}
    async with await Store.open(path) as store:
        stats = await store.stats()
        figures["transitions"] = stats.transitions
        figures["agents"] = stats.agents

        def report(by: str) -> Callable[[], Awaitable[object]]:
            return lambda: status_time(store, FIRST, last, TZ, now, [by])

        figures["status_time_cold_s"], result = await timed(report("agent"))
        figures["rows_by_agent"] = len(result.rows)  # type: ignore[attr-defined]
        for by in ("agent", "division", "queue", "day"):
            figures[f"status_time_by_{by}_s"], _ = await timed(report(by), repeat=3)
        times = []
        rng = random.Random(3)
        for _ in range(5):
            agent = f"agent-{rng.randrange(1, stats.agents + 1):05d}"
            day = FIRST + timedelta(days=rng.randrange(days))
            start, end = day_start_ms(day, ZONE), day_start_ms(day + timedelta(days=1), ZONE)
            seconds, timeline = await timed(
                functools.partial(agent_timeline, store, agent, start, end, now)
            )
            times.append(seconds)
        figures["agent_day_s"] = max(times)
        figures["agent_day_intervals"] = len(timeline.intervals)  # type: ignore[attr-defined]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 agents over 7 days")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    agents, days = (100, 7) if args.quick else (1000, 31)
    source = build(agents, days)
    with tempfile.TemporaryDirectory() as work:
        copy = Path(work) / "monitor.db"
        shutil.copyfile(source, copy)
        figures = asyncio.run(measure(copy, days))
    figures.update(agents_generated=agents, days=days, timezone=TZ)
    print(f"{figures['transitions']:,} transitions, {agents} agents, {days} days ({TZ})")
    checks = [
        ("status-time, first run (computes and caches every day)", "status_time_cold_s", None),
        ("status-time by agent", "status_time_by_agent_s", TARGET_S),
        ("status-time by division", "status_time_by_division_s", TARGET_S),
        ("status-time by queue", "status_time_by_queue_s", TARGET_S),
        ("status-time by day", "status_time_by_day_s", TARGET_S),
        ("agent day (slowest of 5)", "agent_day_s", TARGET_S),
    ]
    missed = False
    for label, key, target in checks:
        verdict = "" if target is None else ("ok" if figures[key] < target else "MISSED")
        missed |= verdict == "MISSED"
        goal = "" if target is None else f"(target < {target:.0f} s)"
        print(f"  {label:58s} {figures[key]:8.3f} s  {goal} {verdict}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
