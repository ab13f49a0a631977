"""Realistic transitions, and large databases prefilled with them, for the benchmarks.

A prefilled database is built once with executemany in big transactions (minutes for two million
rows), cached under bench/.cache/ with the schema, the row count, the agents and the end of its
history in its name, and copied for each run, so every run starts from the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from monitor.core.model import Kind, Presence, RoutingStatus, Source, Transition
from monitor.store import SCHEMA_VERSION, Store
from monitor.store.schema import MIGRATIONS

CACHE = Path(__file__).parent / ".cache"
DAY_MS = 86_400_000
PRESENCES = [p.value for p in Presence]
ROUTINGS = [r.value for r in RoutingStatus]


class History:
    """Agents with stable ids and a last value per kind, so that generated rows look real."""

    def __init__(self, agents: int, seed: int, ids: Sequence[str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.ids = (
            list(ids)
            if ids is not None
            else [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(agents)]
        )
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


def prefilled(
    rows: int, agents: int, end_ms: int, *, ids: Sequence[str] | None = None, days: int = 40
) -> Path:
    """The cached database with `rows` transitions over the `days` days before `end_ms`, for
    `agents` generated agents, or for the agents `ids` when given."""
    CACHE.mkdir(exist_ok=True)
    # The schema's text is part of the name, so a cached file never outlives a schema change.
    schema = hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[:8]
    who = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:8] if ids is not None else "gen"
    count = len(ids) if ids is not None else agents
    stem = f"store-v{SCHEMA_VERSION}-{schema}-{rows}-{count}-{who}-{end_ms}"
    path = CACHE / f"{stem}.db"
    if path.exists():
        return path
    started = time.perf_counter()
    # Files cached for an older schema or an older end of history are of no more use.
    for stale in CACHE.glob(f"store-v*-{rows}-{count}-{who}-*.db"):
        stale.unlink()
    history = History(agents, seed=1, ids=ids)
    building, conn = start_building(path)
    conn.executemany("INSERT INTO agents (key, id) VALUES (?, ?)", enumerate(history.ids, 1))
    keys = {agent_id: key for key, agent_id in enumerate(history.ids, 1)}
    start, step = end_ms - days * DAY_MS, days * DAY_MS / rows
    done = 0
    while done < rows:
        batch = history.transitions(min(250_000, rows - done), start + int(done * step), step)
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
    finish_building(conn, building, path, end_ms)
    print(f"built {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def start_building(path: Path) -> tuple[Path, sqlite3.Connection]:
    """A fresh file beside `path`, with the monitor's schema, and a connection to it that
    trades safety for speed (the file is only renamed to `path` once complete)."""
    building = path.with_name(path.stem + ".building.db")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)

    async def create() -> None:
        store = await Store.open(building)
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(building, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    return building, conn


def finish_building(conn: sqlite3.Connection, building: Path, path: Path, end_ms: int) -> None:
    """Close the file `start_building` made, derive its current state, index the hours before
    `end_ms` by agent, and put it at `path`."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

    async def finish() -> None:
        async with await Store.open(building) as store:
            await store.rebuild_current_state()
            await store.index_hours(end_ms)

    asyncio.run(finish())
    building.rename(path)


def copy_database(source: Path, target: Path) -> Path:
    """A private copy of a cached database (closed and checkpointed, so the file is all of it)."""
    shutil.copyfile(source, target)
    return target
