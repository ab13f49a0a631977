"""Committed transitions per second through the Writer, against the naive design.

Measures, in one run:

- the Writer and Store on a fresh database;
- the same on a database that already holds two million transitions (built once with executemany
  in big transactions and cached under bench/.cache/, then copied for each run);
- the naive design: one INSERT and one commit per event, SQLite's default journal and
  synchronous settings, text agent ids, no batching.

Transitions are put as fast as the Writer accepts them, so the figure is the sustained rate at
which the writer commits when it is the bottleneck. Run: .venv/bin/python -m bench.bench_store
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.consumers import NAIVE_SCHEMA
from bench.dbfill import CACHE, History, prefilled
from monitor.core.model import Transition
from monitor.store import Store, Writer
from monitor.store.database import DEFAULT_CACHE_MIB, DEFAULT_WAL_AUTOCHECKPOINT


@dataclass
class Result:
    name: str
    transitions: int
    seconds: float
    batches: int = 0
    mean_batch: float = 0.0
    p99_batch_ms: float = 0.0

    @property
    def rate(self) -> float:
        return self.transitions / self.seconds if self.seconds else 0.0


async def through_writer(
    name: str, path: Path, events: list[Transition], max_batch: int, cache_mib: int, wal: int
) -> Result:
    durations: list[float] = []
    sizes: list[int] = []

    def on_batch(size: int, seconds: float) -> None:
        sizes.append(size)
        durations.append(seconds)

    async with await Store.open(path, cache_mib=cache_mib, wal_autocheckpoint=wal) as store:
        writer = Writer(store, max_batch=max_batch, on_batch=on_batch)
        task = asyncio.create_task(writer.run())
        started = time.perf_counter()
        for transition in events:
            await writer.put(transition)
        await writer.drain()
        seconds = time.perf_counter() - started
        await task
        stats = await store.stats()
    if stats.transitions < len(events):
        raise SystemExit(f"{name}: only {stats.transitions} of {len(events)} transitions stored")
    p99 = statistics.quantiles(durations, n=100)[98] if len(durations) > 1 else durations[0]
    return Result(
        name=name,
        transitions=len(events),
        seconds=seconds,
        batches=len(sizes),
        mean_batch=statistics.fmean(sizes),
        p99_batch_ms=p99 * 1000,
    )


def naive(path: Path, events: list[Transition]) -> Result:
    conn = sqlite3.connect(path)  # default journal (DELETE) and synchronous (FULL)
    conn.execute(NAIVE_SCHEMA)
    conn.commit()
    started = time.perf_counter()
    for t in events:
        conn.execute(
            "INSERT OR IGNORE INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.agent_id,
                t.kind.value,
                t.from_value,
                t.to_value,
                t.definition_id,
                t.event_ms,
                t.seen_ms,
                t.source.value,
            ),
        )
        conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    return Result(
        name="naive: one INSERT + commit per event", transitions=len(events), seconds=seconds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=2_000_000)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--naive-events", type=int, default=2000)
    parser.add_argument("--max-batch", type=int, default=2000)
    parser.add_argument("--cache-mib", type=int, default=DEFAULT_CACHE_MIB)
    parser.add_argument("--wal-autocheckpoint", type=int, default=DEFAULT_WAL_AUTOCHECKPOINT)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    now_ms = 1_767_225_600_000  # a fixed "now", so the cached database stays valid
    big = prefilled(args.prefill, args.agents, now_ms)
    # Two event-time shapes of the same volume. A burst: every transition within seconds of
    # "now" (ten per millisecond), the worst case for the per-agent index, whose current hour
    # then holds every row. Paced: two transitions per second of event time, a 1,000-agent
    # centre's own rate, as when history is backfilled or a backlog is written.
    burst = History(args.agents, seed=1).transitions(args.events, now_ms, 0.1)
    paced = History(args.agents, seed=2).transitions(args.events, now_ms, 500.0)
    tuning = (args.max_batch, args.cache_mib, args.wal_autocheckpoint)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="run-") as folder:
        work = Path(folder)
        runs = [
            ("writer, fresh database, burst", None, burst),
            (f"writer, {args.prefill:,} already, burst", big, burst),
            (f"writer, {args.prefill:,} already, paced", big, paced),
        ]
        for number, (name, source, events) in enumerate(runs):
            path = work / f"run{number}.db"
            if source is not None:
                shutil.copyfile(source, path)
            results.append(asyncio.run(through_writer(name, path, events, *tuning)))
        results.append(naive(work / "naive.db", burst[: args.naive_events]))

    if args.json:
        print(json.dumps([asdict(r) | {"rate": r.rate} for r in results], indent=2))
        return
    print(
        f"{'committed transitions':44} {'per second':>12} {'batches':>8} {'mean':>7} {'p99 ms':>7}"
    )
    for r in results:
        extra = f"{r.batches:>8} {r.mean_batch:>7.0f} {r.p99_batch_ms:>7.1f}" if r.batches else ""
        print(f"{r.name:44} {r.rate:>12,.0f} {extra}")
    slow = results[-1].rate
    for r in results[:-1]:
        print(f"{r.name}: {r.rate / slow:,.0f}x the naive design")


if __name__ == "__main__":
    main()
