"""Where every update ends: the tracker decides whether it is a transition; a transition moves the
metrics at once and goes on the writer's queue.

Live frames, snapshots and backfills all come through `Recorder.record`, so the same rules apply
to each, and an update heard twice (two sockets during a rollover, a frame and a snapshot) is
recorded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from monitor.core.model import Source, Transition, Update
from monitor.core.tracker import Tracker
from monitor.metrics import Metrics


class TransitionSink(Protocol):
    """The writer's queue: `put_all` queues and then waits while the queue is over full
    (back-pressure, never a drop)."""

    async def put_all(self, transitions: Sequence[Transition]) -> None: ...


class Recorder:
    def __init__(self, tracker: Tracker, metrics: Metrics, sink: TransitionSink) -> None:
        self.tracker = tracker
        self._metrics = metrics
        self._sink = sink
        self._duplicates = tracker.duplicates
        self._stale = tracker.stale
        self._listeners: list[Callable[[Transition], None]] = []

    def listen(self, listener: Callable[[Transition], None]) -> Callable[[], None]:
        """Call `listener` with every transition recorded from now on (after the metrics moved,
        before it is written); returns a function that stops it. Listeners must not block."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def record(self, updates: Iterable[Update], source: Source, seen_ms: int) -> int:
        """Apply `updates`; returns how many transitions they made."""
        apply = self.tracker.apply
        on_transition = self._metrics.on_transition
        listeners = self._listeners
        made: list[Transition] = []
        for update in updates:
            transition = apply(update, seen_ms, source)
            if transition is None:
                continue
            on_transition(transition)
            for listener in listeners:
                listener(transition)
            made.append(transition)
        self._count_dropped()
        # All at once: they are queued before anything is awaited, so a reader cancelled while
        # the queue is full loses none of the transitions the tracker has already taken.
        await self._sink.put_all(made)
        return len(made)

    def _count_dropped(self) -> None:
        tracker = self.tracker
        if tracker.duplicates != self._duplicates:
            self._metrics.updates_dropped.labels("duplicate").inc(
                tracker.duplicates - self._duplicates
            )
            self._duplicates = tracker.duplicates
        if tracker.stale != self._stale:
            self._metrics.updates_dropped.labels("stale").inc(tracker.stale - self._stale)
            self._stale = tracker.stale
