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
import hashlib
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from monitor.core.model import Kind, Presence, RoutingStatus, Source, Transition
from monitor.store import SCHEMA_VERSION, Store, Writer
from monitor.store.database import DEFAULT_CACHE_MIB, DEFAULT_WAL_AUTOCHECKPOINT
from monitor.store.schema import MIGRATIONS

CACHE = Path(__file__).parent / ".cache"
DAY_MS = 86_400_000
PRESENCES = [p.value for p in Presence]
ROUTINGS = [r.value for r in RoutingStatus]

NAIVE_SCHEMA = """
CREATE TABLE transitions (
    agent_id TEXT NOT NULL, kind TEXT NOT NULL, from_value TEXT, to_value TEXT NOT NULL,
    definition_id TEXT, event_ms INTEGER NOT NULL, seen_ms INTEGER NOT NULL, source TEXT NOT NULL,
    UNIQUE (agent_id, kind, event_ms, to_value, definition_id)
)
"""


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


class Org:
    """Agents with stable ids and a last value per kind, so that generated rows look real."""

    def __init__(self, agents: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(agents)]
        self.definitions = {p: str(uuid.UUID(int=self.rng.getrandbits(128))) for p in PRESENCES}
        self.last: dict[tuple[int, Kind], tuple[str, int]] = {}

    def transitions(self, count: int, start_ms: int, mean_step_ms: float) -> list[Transition]:
        rng, out, now = self.rng, [], float(start_ms)
        for _ in range(count):
            now += rng.expovariate(1 / mean_step_ms) if mean_step_ms else 0
            agent = rng.randrange(len(self.ids))
            kind = Kind.PRESENCE if rng.random() < 0.4 else Kind.ROUTING
            value = rng.choice(PRESENCES if kind is Kind.PRESENCE else ROUTINGS)
            previous, last_ms = self.last.get((agent, kind), (None, -1))
            # Each agent's events of one kind have distinct times, as in Genesys.
            event_ms = max(int(now), last_ms + 1)
            self.last[agent, kind] = (value, event_ms)
            out.append(
                Transition(
                    agent_id=self.ids[agent],
                    kind=kind,
                    from_value=previous,
                    to_value=value,
                    definition_id=self.definitions[value] if kind is Kind.PRESENCE else None,
                    event_ms=event_ms,
                    seen_ms=event_ms + rng.randrange(20, 400),
                    source=Source.LIVE,
                )
            )
        return out


def prefilled(rows: int, agents: int, now_ms: int) -> Path:
    """The cached database with `rows` transitions over the 40 days before `now_ms`."""
    CACHE.mkdir(exist_ok=True)
    # The schema's text is part of the name, so a cached file never outlives a schema change.
    schema = hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[:8]
    path = CACHE / f"store-v{SCHEMA_VERSION}-{schema}-{rows}-{agents}.db"
    if path.exists():
        return path
    started = time.perf_counter()
    # Files cached for an older schema are of no more use.
    for stale in CACHE.glob(f"store-v*-{rows}-{agents}*.db"):
        stale.unlink()
    building = path.with_name(f"{path.stem}.building.db")
    for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)

    async def create() -> None:
        store = await Store.open(building)
        await store.close()

    asyncio.run(create())
    org = Org(agents, seed=1)
    conn = sqlite3.connect(building, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    conn.executemany("INSERT INTO agents (key, id) VALUES (?, ?)", enumerate(org.ids, 1))
    keys = {agent_id: key for key, agent_id in enumerate(org.ids, 1)}
    start, step = now_ms - 40 * DAY_MS, 40 * DAY_MS / rows
    done = 0
    while done < rows:
        batch = org.transitions(min(250_000, rows - done), start + int(done * step), step)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR IGNORE INTO transitions (agent, kind, from_value, to_value, definition_id,"
            " event_ms, seen_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    keys[t.agent_id],
                    t.kind.value,
                    t.from_value,
                    t.to_value,
                    t.definition_id or "",
                    t.event_ms,
                    t.seen_ms,
                    t.source.value,
                )
                for t in batch
            ],
        )
        conn.execute("COMMIT")
        done += len(batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

    async def finish() -> None:
        async with await Store.open(building) as store:
            await store.rebuild_current_state()

    asyncio.run(finish())
    building.rename(path)
    print(f"built {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


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
    burst = Org(args.agents, seed=1).transitions(args.events, now_ms, 0.1)
    paced = Org(args.agents, seed=2).transitions(args.events, now_ms, 500.0)
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
