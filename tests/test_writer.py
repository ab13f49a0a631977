"""The batching writer, on real SQLite files; and a writer process killed mid-batch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from monitor.core.model import Kind, Source, Transition
from monitor.errors import StoreError
from monitor.store import Store, Writer
from tests.support import eventually, scaled

T0 = 1_767_225_600_000
ROOT = Path(__file__).resolve().parents[1]


def tr(n: int, agent: str = "a1") -> Transition:
    return Transition(agent, Kind.ROUTING, None, f"S{n}", None, T0 + n, T0 + n + 1, Source.LIVE)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "monitor.db", busy_timeout_ms=20) as opened:
        yield opened


async def stored(store: Store) -> int:
    return (await store.stats()).transitions


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holding the database's write lock, as another process might."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.close()


class Batches:
    """Collects on_batch and on_error calls."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.errors: list[tuple[StoreError, int]] = []

    def batch(self, size: int, seconds: float) -> None:
        assert seconds >= 0
        self.sizes.append(size)

    def error(self, error: StoreError, attempt: int) -> None:
        self.errors.append((error, attempt))


async def test_batches_are_cut_by_count(store: Store) -> None:
    """With a long delay, full batches are written at once and the rest only when drained."""
    seen = Batches()
    writer = Writer(store, max_batch=10, max_delay_s=60, on_batch=seen.batch)
    task = asyncio.create_task(writer.run())
    for n in range(25):
        await writer.put(tr(n))
    await eventually(lambda: seen.sizes == [10, 10], message="two full batches")
    assert writer.depth == 5
    await writer.drain(scaled(5))
    await task
    assert seen.sizes == [10, 10, 5]
    assert await stored(store) == 25


async def test_batches_are_cut_by_time(store: Store) -> None:
    """A batch smaller than max_batch is written once max_delay_s has passed."""
    seen = Batches()
    writer = Writer(store, max_batch=1000, max_delay_s=0.05, on_batch=seen.batch)
    task = asyncio.create_task(writer.run())
    for n in range(3):
        await writer.put(tr(n))
    await eventually(lambda: seen.sizes == [3], message="a batch by time")
    assert await stored(store) == 3
    assert not task.done()
    await writer.drain(scaled(5))
    await task


async def test_a_full_queue_makes_put_wait_and_drops_nothing(store: Store) -> None:
    """put() blocks while the queue is full and completes once the writer makes room."""
    writer = Writer(store, max_batch=2, queue_size=5)
    for n in range(5):
        writer.put_nowait(tr(n))
    with pytest.raises(asyncio.QueueFull):
        writer.put_nowait(tr(5))
    blocked = asyncio.create_task(writer.put(tr(5)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    assert writer.depth == 5
    task = asyncio.create_task(writer.run())
    async with asyncio.timeout(scaled(5)):
        await blocked
    await writer.drain(scaled(5))
    await task
    assert await stored(store) == 6


async def test_put_all_queues_at_once_and_a_reader_cancelled_while_it_waits_loses_nothing(
    store: Store,
) -> None:
    """put_all() queues every transition before it waits for room; cancelling the wait keeps
    them queued, and all are written."""
    writer = Writer(store, max_batch=2, queue_size=5)
    for n in range(5):
        writer.put_nowait(tr(n))
    blocked = asyncio.create_task(writer.put_all([tr(5), tr(6), tr(7)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    assert writer.depth == 8
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    await writer.drain(scaled(5))
    assert await stored(store) == 8


async def test_put_all_waits_until_the_buffer_is_back_within_its_size(store: Store) -> None:
    """put_all() returns once the writer has brought the buffer back to queue_size or less."""
    writer = Writer(store, max_batch=2, queue_size=3)
    blocked = asyncio.create_task(writer.put_all([tr(n) for n in range(6)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    task = asyncio.create_task(writer.run())
    async with asyncio.timeout(scaled(5)):
        await blocked
    assert writer.depth <= 3
    await writer.drain(scaled(5))
    await task
    assert await stored(store) == 6


async def test_drain_writes_everything_queued_and_then_refuses_more(store: Store) -> None:
    """Transitions queued when the stop comes are all written; later puts raise StoreError."""
    writer = Writer(store, max_batch=7, max_delay_s=60)
    task = asyncio.create_task(writer.run())
    for n in range(100):
        await writer.put(tr(n))
    await writer.drain(scaled(5))
    assert writer.depth == 0
    assert await stored(store) == 100
    await task
    with pytest.raises(StoreError, match="stopping"):
        await writer.put(tr(100))


async def test_drain_writes_the_queue_itself_when_run_is_not_running(store: Store) -> None:
    """drain() without a running writer task still commits what was queued."""
    writer = Writer(store, max_batch=3)
    for n in range(10):
        await writer.put(tr(n))
    await writer.drain(scaled(5))
    assert await stored(store) == 10


async def test_a_transient_write_error_is_retried_and_reported(store: Store) -> None:
    """While the database is locked the batch is retried and each failure reported; then written."""
    seen = Batches()
    writer = Writer(
        store,
        max_delay_s=0,
        on_batch=seen.batch,
        on_error=seen.error,
        retry_initial_s=0.01,
        retry_max_s=0.02,
        max_attempts=10_000,
    )
    task = asyncio.create_task(writer.run())
    with write_lock(store.path):
        for n in range(50):
            await writer.put(tr(n))
        await eventually(lambda: len(seen.errors) >= 2, message="failures reported")
        assert await stored(store) == 0
    await eventually(lambda: writer.depth == 0, message="written after the lock went")
    assert not task.done()
    assert all(isinstance(error, StoreError) for error, _ in seen.errors)
    assert [attempt for _, attempt in seen.errors][:2] == [1, 2]
    await writer.drain(scaled(5))
    await task
    assert await stored(store) == 50
    assert sum(seen.sizes) == 50


async def test_a_persistent_write_error_ends_run_and_keeps_the_queue(store: Store) -> None:
    """After max_attempts failures run() raises StoreError, put() refuses, nothing is lost."""
    writer = Writer(store, max_delay_s=0, retry_initial_s=0, max_attempts=3)
    with write_lock(store.path):
        task = asyncio.create_task(writer.run())
        for n in range(20):
            await writer.put(tr(n))
        with pytest.raises(StoreError, match="failed 3 times"):
            await task
        assert writer.depth == 20
        with pytest.raises(StoreError, match="has stopped"):
            await writer.put(tr(20))
    await writer.drain(scaled(5))
    assert await stored(store) == 20


async def test_a_batch_whose_write_was_cancelled_is_written_once(store: Store) -> None:
    """Cancelling run() mid-write keeps the batch queued; drain writes it, with no duplicate."""
    seen = Batches()
    writer = Writer(
        store, max_delay_s=0, on_error=seen.error, retry_initial_s=0, max_attempts=10_000
    )
    task = asyncio.create_task(writer.run())
    with write_lock(store.path):
        for n in range(30):
            await writer.put(tr(n))
        await eventually(lambda: seen.errors, message="a write attempt in progress")
    # The lock is gone: the attempt in flight may commit before, during or after the cancel.
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await writer.drain(scaled(5))
    assert writer.depth == 0
    assert await stored(store) == 30
    assert await store.integrity_check() == "ok"


class InFlight:
    """The store, counting the writes it has been given and not yet finished."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = 0
        self.most = 0

    async def write(self, transitions: Sequence[Transition]) -> int:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self.store.write(transitions)
        finally:
            self.now -= 1


async def test_a_full_batch_behind_the_one_being_written_goes_to_the_store_at_once(
    store: Store,
) -> None:
    """With full batches waiting, two are with the store at a time, and all are written once."""
    seen = Batches()
    sink = InFlight(store)
    writer = Writer(sink, max_batch=10, max_delay_s=60, on_batch=seen.batch)
    for n in range(45):
        writer.put_nowait(tr(n))
    task = asyncio.create_task(writer.run())
    await eventually(lambda: seen.sizes == [10] * 4, message="four full batches")
    assert sink.most == 2
    await writer.drain(scaled(5))
    await task
    assert seen.sizes == [10, 10, 10, 10, 5]
    assert writer.written == 45
    assert await stored(store) == 45


class Gated(InFlight):
    """The store, holding its first write until `gate` is set."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.gate = asyncio.Event()
        self.started = 0

    async def write(self, transitions: Sequence[Transition]) -> int:
        self.started += 1
        if self.started == 1:
            await self.gate.wait()
        return await super().write(transitions)


async def test_a_batch_due_by_time_goes_to_the_store_while_the_one_before_is_written(
    store: Store,
) -> None:
    """Transitions put while a write is slow go to the store max_delay_s after that write's
    batch did, not after it commits: the store begins them the moment it can."""
    seen = Batches()
    sink = Gated(store)
    writer = Writer(sink, max_batch=1000, max_delay_s=0.05, on_batch=seen.batch)
    task = asyncio.create_task(writer.run())
    for n in range(3):
        await writer.put(tr(n))
    await eventually(lambda: sink.started == 1, message="the first batch with the store")
    for n in range(3, 5):
        await writer.put(tr(n))
    await eventually(lambda: sink.started == 2, message="the second batch with the store")
    assert seen.sizes == []  # the first is still being written
    sink.gate.set()
    await eventually(lambda: seen.sizes == [3, 2], message="both batches committed")
    await writer.drain(scaled(5))
    await task
    assert await stored(store) == 5


async def test_a_failing_callback_does_not_stop_the_writer(store: Store) -> None:
    """An exception raised by on_batch is logged and the writing goes on."""

    def broken(size: int, seconds: float) -> None:
        raise RuntimeError("metrics are broken")

    writer = Writer(store, max_batch=2, on_batch=broken)
    task = asyncio.create_task(writer.run())
    for n in range(6):
        await writer.put(tr(n))
    await writer.drain(scaled(5))
    await task
    assert await stored(store) == 6


async def test_bad_transitions_are_refused_at_put(store: Store) -> None:
    """put() raises ValueError for a transition the store could not hold; nothing is queued."""
    writer = Writer(store)
    bad = Transition("a1", Kind.ROUTING, None, "IDLE", None, -5, T0, Source.LIVE)
    with pytest.raises(ValueError, match="event_ms"):
        await writer.put(bad)
    with pytest.raises(ValueError, match="Transition"):
        writer.put_nowait("IDLE")  # type: ignore[arg-type]
    assert writer.depth == 0


CHILD = """
import asyncio, sys
from monitor import logs
from monitor.core.model import Kind, Source, Transition
from monitor.store import Store, Writer

logs.configure("warning", "json", sys.stderr)  # stdout carries only the committed counts

async def main(path):
    store = await Store.open(path)
    total = 0
    def committed(size, seconds):
        # Called after the commit: every transition counted here is on disk.
        nonlocal total
        total += size
        print(total, flush=True)
    writer = Writer(store, max_batch=300, max_delay_s=60, on_batch=committed)
    task = asyncio.create_task(writer.run())
    n = 0
    while True:
        await writer.put(Transition(
            f"agent-{n % 40}", Kind.ROUTING, None, f"S{n}", None, n, n, Source.LIVE))
        n += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_a_writer_killed_mid_batch_leaves_a_sound_database(tmp_path: Path) -> None:
    """SIGKILL during writes leaves a database that passes integrity_check and holds every
    batch reported committed, with no partial batch."""
    path = tmp_path / "monitor.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert child.stdout is not None
    committed = 0
    try:
        async with asyncio.timeout(scaled(30)):
            while committed < 6000:
                line = await child.stdout.readline()
                assert line, "the writer process ended early"
                committed = int(line)
    finally:
        child.kill()
        await child.wait()
    for line in (await child.stdout.read()).split():
        committed = max(committed, int(line))
    assert child.returncode == -9

    async with await Store.open(path) as store:
        assert await store.integrity_check() == "ok"
        total = await stored(store)
    # Transitions went in put order, in batches of exactly 300 (the producer never pauses): what
    # is on disk is a prefix of them, at least as long as what was reported, made of whole
    # batches, with no gap.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        low, high, rows = conn.execute(
            "SELECT min(event_ms), max(event_ms), count(*) FROM transitions"
        ).fetchone()
    assert total >= committed
    assert total % 300 == 0
    assert (low, high, rows) == (0, total - 1, total)
