"""Where every update ends: the tracker decides whether it is a transition; a transition moves the
metrics at once and goes on the writer's queue.

Live frames, snapshots and backfills all come through `Recorder.record`, so the same rules apply
to each, and an update heard twice (two sockets during a rollover, a frame and a snapshot) is
recorded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from monitor.core.model import Source, Transition, Update
from monitor.core.tracker import Tracker
from monitor.metrics import Metrics


class TransitionSink(Protocol):
    """The writer's queue: `put` waits while the queue is full (back-pressure, never a drop)."""

    async def put(self, transition: Transition) -> None: ...


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
        tracker = self.tracker
        made = 0
        for update in updates:
            transition = tracker.apply(update, seen_ms, source)
            if transition is None:
                continue
            made += 1
            self._metrics.on_transition(transition)
            for listener in self._listeners:
                listener(transition)
            await self._sink.put(transition)
        self._count_dropped()
        return made

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
