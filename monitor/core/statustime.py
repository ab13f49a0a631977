"""Time in status: local days, gaps, and the per-day totals of every agent's presence and routing.

The vocabulary of the status-time report:

- A *timeline* is every recorded row of one agent and kind (late rows included: a late change
  happened, it only arrived after a newer one), ordered by event time. Rows at the same event
  time are one change, and the larger value wins, as in core.tracker.
- A *piece* runs from one row's event time to the next row's, or to the end of what is being
  counted (the end of the day, or "now"). Pieces never cross a local day boundary: the status in
  force at midnight is carried into the next day as that day's *opening*.
- An *entry* is a row whose value differs from the value before it: the count of transitions
  into a status. A row with the same value (a re-entry the tracker could only infer, or another
  presence definition of the same system presence) is a boundary inside one status, not an
  entry. The first row ever seen for an agent is when watching began, not an entry.
- The part of a piece that overlaps a gap concerning the agent is *uncertain*: counted apart,
  never as certain time. A *stretch* is a run of certain time in one status; an entry or a gap
  ends it, a boundary row does not. `longest_ms` is the longest stretch within one day.
- Before an agent's first row nothing is known, and nothing is counted.

Everything is in integer epoch milliseconds; time zones are passed in (no clock, no I/O).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Generic, TypeVar

__all__ = [
    "Day",
    "DayAccumulator",
    "DayResult",
    "GapIndex",
    "Totals",
    "day_start_ms",
    "days_between",
    "merge_intervals",
]

A = TypeVar("A", bound=Hashable)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Day:
    """One local calendar day as the half-open interval [start_ms, end_ms): 23, 24 or 25 hours."""

    date: date
    start_ms: int
    end_ms: int


def day_start_ms(day: date, tz: tzinfo) -> int:
    """The first instant of `day` in `tz`.

    Aware arithmetic converts the local midnight with fold=0: where midnight itself is skipped by
    a DST change (America/Santiago, for one), that is the first instant after the skipped hour,
    and where midnight happens twice, its first occurrence. Either way the day starts once.
    """
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (local - _EPOCH) // _MS


def days_between(first: date, last: date, tz: tzinfo) -> list[Day]:
    """Every local day from `first` to `last`, both included."""
    if last < first:
        raise ValueError(f"the last day ({last}) is before the first ({first})")
    days = []
    start = day_start_ms(first, tz)
    current = first
    while current <= last:
        following = current + timedelta(days=1)
        end = day_start_ms(following, tz)
        days.append(Day(current, start, end))
        current, start = following, end
    return days


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Overlapping or touching [start, end) intervals merged, in order; empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


class GapIndex(Generic[A]):
    """The gaps that concern each agent, merged, within [start_ms, end_ms).

    `every` are gaps of the whole monitor (channel "*", or no agent list); `some` are channel
    gaps with the agents that channel carried.
    """

    def __init__(
        self,
        start_ms: int,
        end_ms: int,
        every: Iterable[tuple[int, int]] = (),
        some: Iterable[tuple[Iterable[A], int, int]] = (),
    ) -> None:
        def clip(begin: int, finish: int) -> tuple[int, int]:
            return max(begin, start_ms), min(finish, end_ms)

        self._every = tuple(clip(s, e) for s, e in every)
        per_agent: dict[A, list[tuple[int, int]]] = {}
        for agents, s, e in some:
            for agent in agents:
                per_agent.setdefault(agent, []).append(clip(s, e))
        self._default = merge_intervals(self._every)
        self._merged: dict[A, tuple[tuple[int, int], ...]] = {
            agent: merge_intervals((*self._every, *spans)) for agent, spans in per_agent.items()
        }

    def of(self, agent: A) -> tuple[tuple[int, int], ...]:
        """The merged gap intervals that concern `agent`."""
        return self._merged.get(agent, self._default)


@dataclass(slots=True)
class Totals:
    """Time in one status: certain and uncertain milliseconds, entries, longest certain stretch."""

    ms: int = 0
    uncertain_ms: int = 0
    entries: int = 0
    longest_ms: int = 0

    def add(self, other: Totals) -> None:
        """Fold `other` (another day, another agent of the same group) into these totals."""
        self.ms += other.ms
        self.uncertain_ms += other.uncertain_ms
        self.entries += other.entries
        self.longest_ms = max(self.longest_ms, other.longest_ms)


@dataclass(frozen=True, slots=True)
class DayResult(Generic[A]):
    """Totals per (agent, kind, status) for one day, and the status in force at its end per
    (agent, kind): the next day's opening."""

    totals: dict[tuple[A, str, str], Totals]
    closing: dict[tuple[A, str], str]


class _Piece:
    """The open piece of one agent and kind: its value since `start`, the value before it, the
    certain stretch so far, and whether it began at a row of this day (not at the opening)."""

    __slots__ = ("before", "real", "run", "start", "value")

    def __init__(self, value: str, start: int, before: str | None, real: bool) -> None:
        self.value = value
        self.start = start
        self.before = before
        self.run = 0
        self.real = real


class DayAccumulator(Generic[A]):
    """Folds one day's rows, for every agent at once and in event-time order, into totals.

    Rows are fed in event order, as the store's time index yields them, so no sort is needed;
    each (agent, kind) keeps one open piece, closed when the next row of that agent and kind
    arrives. A whole day of a large contact centre goes through this loop, so it stays lean.
    """

    def __init__(
        self,
        start_ms: int,
        end_ms: int,
        openings: Mapping[tuple[A, str], str],
        gaps: GapIndex[A],
    ) -> None:
        if end_ms < start_ms:
            raise ValueError("a day cannot end before it starts")
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._gaps = gaps
        self._totals: dict[tuple[A, str, str], Totals] = {}
        # The opening's "value before" is itself: the status in force at midnight is no entry.
        self._open: dict[tuple[A, str], _Piece] = {
            key: _Piece(value, start_ms, value, real=False) for key, value in openings.items()
        }

    def add(self, rows: Iterable[tuple[A, str, int, str]]) -> None:
        """Feed (agent, kind, event_ms, value) rows with start <= event_ms < end, in event order."""
        opened = self._open
        close = self._close
        start, end = self.start_ms, self.end_ms
        for agent, kind, event_ms, value in rows:
            if not start <= event_ms < end:
                raise ValueError(f"row at {event_ms} is outside the day [{start}, {end})")
            key = (agent, kind)
            piece = opened.get(key)
            if piece is None:
                opened[key] = _Piece(value, event_ms, None, real=True)
                continue
            if event_ms == piece.start and piece.real:
                # Two rows at one event time are one change; the larger value wins (tracker).
                piece.value = max(piece.value, value)
                continue
            if event_ms < piece.start:
                raise ValueError(f"rows of {key} are not in event-time order")
            close(key, piece, event_ms)
            piece.before = piece.value
            piece.value = value
            piece.start = event_ms
            piece.real = True

    def finish(self) -> DayResult[A]:
        """Close every open piece at the end and return the day's totals."""
        for key, piece in self._open.items():
            self._close(key, piece, self.end_ms)
            piece.start = self.end_ms
        closing = {key: piece.value for key, piece in self._open.items()}
        return DayResult(self._totals, closing)

    def _close(self, key: tuple[A, str], piece: _Piece, end: int) -> None:
        start = piece.start
        if end <= start:
            return
        value = piece.value
        run = piece.run
        total_key = (key[0], key[1], value)
        totals = self._totals.get(total_key)
        if totals is None:
            totals = self._totals[total_key] = Totals()
        if piece.before is not None and piece.before != value:
            totals.entries += 1
            run = 0
        position = start
        for gap_start, gap_end in self._gaps.of(key[0]):
            if gap_end <= position:
                continue
            if gap_start >= end:
                break
            if gap_start > position:
                run += gap_start - position
                totals.ms += gap_start - position
                totals.longest_ms = max(totals.longest_ms, run)
            stop = min(gap_end, end)
            totals.uncertain_ms += stop - max(gap_start, position)
            # A gap ends the stretch: whether the agent stayed in the status is not known.
            run = 0
            position = stop
        if position < end:
            run += end - position
            totals.ms += end - position
            totals.longest_ms = max(totals.longest_ms, run)
        piece.run = run
