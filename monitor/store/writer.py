"""The one writer task: a bounded buffer of transitions, drained into the store in batches.

Ordering. Transitions are written in the order they were put, in batches of up to `max_batch`.
Nothing downstream depends on that order for correctness: current_state follows event time, and
the natural key makes a transition written twice harmless. That is what lets a batch be retried
after a failure, or written again after a cancellation, without any bookkeeping.

Back-pressure. The buffer holds at most `queue_size` transitions, counting the batch being
written. `put()` waits for room; nothing is ever dropped. `put_all()`, for the transitions of a
batch of frames, queues them at once and then waits while the buffer is over `queue_size`: it may
overshoot by what the readers put at once, and a reader cancelled while it waits has lost nothing. A full buffer slows the readers of the
websockets down, and Genesys keeps the events meanwhile (or the next snapshot recovers them).

Batching. A batch is written as soon as `max_batch` transitions are waiting, or `max_delay_s`
after the writer began collecting it: from the first transition's arrival when the writer was
idle, or from the moment the previous batch went to the store when transitions arrived during its
write. A transition thus waits at most `max_delay_s`, or one write when that takes longer, before
its commit starts. Under load, batches go back to back, each holding what arrived during the
write before it; counting from the end of the previous write instead would add `max_delay_s` to
every batch's wait, and at tens of thousands of transitions a second, half of it to their latency.

Pipelining. While a batch is being written, the next one goes to the store as soon as it is due
(full, or `max_delay_s` after the first went), so that the store can begin it as soon as the
first has committed (see the lane in store/database.py) instead of after the event loop has
given this task its turns, which under load take tens of milliseconds each. At most two batches
are with the store at a time, and they leave the buffer in order.

Failures. A batch that fails with StoreError (disk full, database locked by another process) is
retried with exponential backoff; each failure is logged and passed to `on_error`. After
`max_attempts` failures in a row `run()` ends with StoreError, so the supervisor can exit 1, and
`put()` raises from then on; the batch and everything behind it stay in the buffer.

Cancellation. A batch leaves the buffer only once its transaction has committed, and only from
the head. If `run()` is cancelled during a write, the store still finishes that transaction (and
the one of a batch handed over behind it) in its own task, committed or rolled back as a whole,
but the batches stay in the buffer: `drain()` writes them again, and the natural key ignores what
had been committed already. The same goes for a batch that committed behind one that failed. A
cancellation during the backoff between attempts leaves the buffer as it was.

Stopping. `stop()` (or `drain()`) tells `run()` to write everything in the buffer and return;
`put()` refuses new transitions from then on, with StoreError, rather than accept ones that
might never be written. `drain()` also writes the buffer itself when no `run()` is active (it
never started, failed, or was cancelled), within its timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from monitor.core.model import Transition
from monitor.errors import StoreError
from monitor.store.rows import Checked, check_transition, check_transitions

log = structlog.get_logger(__name__)

BatchCallback = Callable[[int, float], None]
ErrorCallback = Callable[[StoreError, int], None]


class TransitionSink(Protocol):
    """What the writer needs of a store."""

    async def write(self, transitions: Sequence[Transition]) -> int:
        """Store the batch in one transaction; return how many transitions were new."""
        ...


@dataclass(slots=True)
class _Handover:
    """A batch given to the store, and its write in progress."""

    batch: list[Transition]
    task: asyncio.Task[int]
    started: float  # perf_counter() when its commit began to count


def _seen(task: asyncio.Task[int]) -> None:
    if not task.cancelled():
        task.exception()


class Writer:
    """Feeds transitions to the store in batches; see the module docstring."""

    def __init__(
        self,
        store: TransitionSink,
        *,
        max_batch: int = 2000,
        max_delay_s: float = 0.05,
        queue_size: int = 50_000,
        on_batch: BatchCallback | None = None,
        on_error: ErrorCallback | None = None,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        max_attempts: int = 10,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_attempts < 1:
            raise ValueError("max_batch, queue_size and max_attempts must be at least 1")
        if max_delay_s < 0 or retry_initial_s < 0 or retry_max_s < retry_initial_s:
            raise ValueError("delays must be non-negative, with retry_max_s >= retry_initial_s")
        self._store = store
        self._max_batch = max_batch
        self._max_delay = max_delay_s
        self._capacity = queue_size
        self._on_batch = on_batch
        self._on_error = on_error
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._max_attempts = max_attempts
        self._buffer: deque[Transition] = deque()
        # Set when run() has something to look at: a first transition, a full batch, a stop.
        self._wake = asyncio.Event()
        # Set when producers waiting in put() should look again: room, a stop or a failure.
        self._room = asyncio.Event()
        self._stopping = False
        self._failure: StoreError | None = None
        self._running = False
        self._finished = asyncio.Event()
        self._written = 0
        # Transitions at the head of the buffer that are with the store (one or two batches).
        self._handed = 0

    @property
    def written(self) -> int:
        """Transitions committed (new or replayed) since the writer was made."""
        return self._written

    @property
    def depth(self) -> int:
        """Transitions waiting to be committed, including a batch being written."""
        return len(self._buffer)

    @property
    def stopping(self) -> bool:
        """True once stop() or drain() has been called."""
        return self._stopping

    # --- producers ---------------------------------------------------------------------------

    async def put(self, transition: Transition) -> None:
        """Queue a transition, waiting while the buffer is full (back-pressure, never a drop).

        Raises ValueError for a transition that cannot be stored, and StoreError once the writer
        is stopping or has failed.
        """
        check_transition(transition)
        while True:
            self._check_accepting()
            if len(self._buffer) < self._capacity:
                break
            self._room.clear()
            await self._room.wait()
        self._append(transition)

    async def put_all(self, transitions: Sequence[Transition]) -> None:
        """Queue transitions in order, then wait while the buffer is over `queue_size` (see
        Back-pressure above). Raises as put() does, before queueing any of them."""
        checked = check_transitions(transitions)
        if not checked:
            return
        self._check_accepting()
        self._buffer.extend(checked)
        self._announce(len(checked))
        # Once stopping, drain() writes everything buffered; waiting would only hold it up.
        while len(self._buffer) > self._capacity and not self._stopping:
            self._check_failed()
            self._room.clear()
            await self._room.wait()

    def put_nowait(self, transition: Transition) -> None:
        """Queue a transition or raise asyncio.QueueFull; for tests and tools, not for readers."""
        check_transition(transition)
        self._check_accepting()
        if len(self._buffer) >= self._capacity:
            raise asyncio.QueueFull
        self._append(transition)

    def _check_accepting(self) -> None:
        self._check_failed()
        if self._stopping:
            raise StoreError("the writer is stopping and accepts no more transitions")

    def _check_failed(self) -> None:
        if self._failure is not None:
            raise StoreError(f"the writer has stopped: {self._failure}") from self._failure

    def _append(self, transition: Transition) -> None:
        self._buffer.append(transition)
        self._announce(1)

    def _announce(self, added: int) -> None:
        """Wake run() for the first transition not yet with the store, and for a full batch."""
        waiting = len(self._buffer) - self._handed
        if waiting == added or waiting >= self._max_batch:
            self._wake.set()

    # --- the writer task ---------------------------------------------------------------------

    async def run(self) -> None:
        """Write batches until stopped and the buffer is empty.

        Raises StoreError when a batch keeps failing; everything unwritten stays buffered, and
        run() (or drain()) may be called again. A run() started while another is active (say,
        a task that only got going after drain() had begun writing) waits for that one first.
        """
        while self._running:
            await self._finished.wait()
        self._running = True
        self._failure = None
        self._finished.clear()
        try:
            await self._loop()
        except StoreError as exc:
            self._failure = exc
            self._room.set()
            raise
        finally:
            # Batches still with the store are written again by the next run() (Cancellation).
            self._handed = 0
            self._running = False
            self._finished.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        collect_from = loop.time()
        behind: _Handover | None = None  # the batch handed over behind the head (Pipelining)
        while True:
            if behind is not None:
                head, behind = behind, None
                # Its commit time counts from when it reached the head of the store's lane.
                head.started = time.perf_counter()
            elif not self._buffer:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                collect_from = loop.time()
                continue
            else:
                await self._collect(loop, collect_from + self._max_delay)
                head = self._hand_over(0, min(len(self._buffer), self._max_batch))
                collect_from = loop.time()
            size = len(head.batch)
            if behind is None:
                behind = await self._next_while_writing(loop, head, collect_from + self._max_delay)
                if behind is not None:
                    collect_from = loop.time()
            await self._commit(head)
            # Only now does the batch leave the buffer (see Cancellation above). Producers only
            # ever append, so the head is still exactly this batch.
            for _ in range(size):
                self._buffer.popleft()
            self._written += size
            self._handed -= size
            # Room is announced on the loop's next turn, not now: callbacks run in the order they
            # were scheduled, so the next batch (when one is waiting) reaches the store before the
            # readers waiting for room wake up and decode their next frames. Otherwise the store
            # would sit idle while they do, and writing and decoding would take turns.
            loop.call_soon(self._room.set)

    async def _collect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Wait until a full batch is buffered, the deadline passes, or a stop is requested."""
        while len(self._buffer) < self._max_batch and not self._stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _next_while_writing(
        self, loop: asyncio.AbstractEventLoop, head: _Handover, deadline: float
    ) -> _Handover | None:
        """While `head` is being written, hand over the batch behind it once that is due: full,
        or `deadline` passed with transitions waiting (see Pipelining). None if the head's write
        ends first."""
        start = len(head.batch)
        while not head.task.done():
            waiting = len(self._buffer) - start
            due = self._stopping or loop.time() >= deadline
            if waiting >= self._max_batch or (waiting and due):
                return self._hand_over(start, min(waiting, self._max_batch))
            # Woken by the head's end, by the first transition behind it or a full batch (put()
            # sets the event then), or at the deadline.
            woken = asyncio.ensure_future(self._wake.wait())
            self._wake.clear()
            try:
                await asyncio.wait(
                    (head.task, woken),
                    timeout=None if due else deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                # On cancellation too: the head's write goes on in its own task (Cancellation).
                woken.cancel()
        return None

    def _hand_over(self, start: int, size: int) -> _Handover:
        """Begin writing the `size` buffered transitions from `start` (one attempt)."""
        # Every transition in the buffer was checked on its way in.
        batch = Checked(itertools.islice(self._buffer, start, start + size))
        self._handed += size
        return _Handover(batch, self._attempt(batch), time.perf_counter())

    def _attempt(self, batch: list[Transition]) -> asyncio.Task[int]:
        task = asyncio.ensure_future(self._store.write(batch))
        # A batch behind one that failed is not awaited if run() ends; its outcome is seen here.
        task.add_done_callback(_seen)
        return task

    async def _commit(self, handover: _Handover) -> None:
        """Wait for the batch's write; retry it on StoreError (see Failures above)."""
        batch = handover.batch
        delay = self._retry_initial
        for attempt in itertools.count(1):
            try:
                await handover.task
            except StoreError as exc:
                log.warning(
                    "store.write_failed",
                    attempt=attempt,
                    of=self._max_attempts,
                    batch=len(batch),
                    error=str(exc),
                )
                self._notify(self._on_error, exc, attempt)
                if attempt >= self._max_attempts:
                    raise StoreError(
                        f"writing a batch of {len(batch)} transitions failed {attempt} times; "
                        f"{len(self._buffer)} transitions are unwritten: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                handover.task = self._attempt(batch)
                handover.started = time.perf_counter()
            else:
                self._notify(self._on_batch, len(batch), time.perf_counter() - handover.started)
                return

    @staticmethod
    def _notify(callback: Callable[..., None] | None, *args: object) -> None:
        # Callbacks feed metrics and logs; a failing one must not stop the writing.
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("store.writer_callback_failed")

    # --- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask run() to write everything buffered and return; put() refuses from now on."""
        self._stopping = True
        self._wake.set()
        self._room.set()

    async def drain(self, timeout_s: float | None = None) -> None:
        """Stop, and wait until everything buffered is committed.

        Writes the buffer itself when no run() is active (it never started, failed, or was
        cancelled). Raises StoreError if transitions are still unwritten after `timeout_s`, or
        when writing them keeps failing.
        """
        self.stop()
        try:
            async with asyncio.timeout(timeout_s):
                while self._running:
                    await self._finished.wait()
                if self._buffer:
                    await self.run()
        except TimeoutError:
            raise StoreError(
                f"{len(self._buffer)} transitions were still unwritten after {timeout_s} s"
            ) from None
