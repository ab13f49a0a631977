"""One agent's presence and routing status as intervals over a window of time.

The same reading of the recorded rows as the status-time report (see core.statustime): every row
of the agent and kind, late ones included, in event-time order; rows at one event time are one
change, won by the larger (value, definition id) as in core.tracker; the status in force when the
window opens is carried in; the part of an interval inside a gap is uncertain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Interval", "Mark", "intervals"]


@dataclass(frozen=True, slots=True)
class Mark:
    """One recorded row: the agent's `kind` became `value` at `event_ms`."""

    kind: str
    event_ms: int
    value: str
    definition_id: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class Interval:
    """A status held over [start_ms, end_ms) within the window.

    `since_ms` is when it began, earlier than `start_ms` for the status carried into the window;
    `uncertain_ms` is the part inside gaps; `source` is where the row came from.
    """

    kind: str
    value: str
    definition_id: str | None
    start_ms: int
    end_ms: int
    since_ms: int
    uncertain_ms: int
    source: str

    @property
    def ms(self) -> int:
        return self.end_ms - self.start_ms


def _order(mark: Mark) -> tuple[int, str, str]:
    return mark.event_ms, mark.value, mark.definition_id or ""


def _overlap(start: int, end: int, gaps: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(end, g_end) - max(start, g_start)) for g_start, g_end in gaps)


def intervals(
    marks: Iterable[Mark],
    openings: Mapping[str, Mark],
    start_ms: int,
    end_ms: int,
    gaps: Sequence[tuple[int, int]] = (),
) -> list[Interval]:
    """The intervals of each kind within [start_ms, end_ms), ordered by start then kind.

    `marks` are the rows inside the window (any order); `openings` the last row of each kind
    before it. `gaps` must be merged (non-overlapping), as GapIndex gives them.
    """
    if end_ms < start_ms:
        raise ValueError("the window ends before it starts")
    by_kind: dict[str, dict[int, Mark]] = {}
    for mark in marks:
        if not start_ms <= mark.event_ms < end_ms:
            raise ValueError(f"row at {mark.event_ms} is outside [{start_ms}, {end_ms})")
        same_time = by_kind.setdefault(mark.kind, {})
        held = same_time.get(mark.event_ms)
        if held is None or _order(mark) > _order(held):
            same_time[mark.event_ms] = mark
    result: list[Interval] = []
    for kind in sorted(set(by_kind) | set(openings)):
        rows = sorted(by_kind.get(kind, {}).values(), key=_order)
        opening = openings.get(kind)
        if opening is not None and (not rows or rows[0].event_ms > start_ms):
            rows.insert(0, opening)
        for index, mark in enumerate(rows):
            begin = max(mark.event_ms, start_ms)
            end = rows[index + 1].event_ms if index + 1 < len(rows) else end_ms
            if end <= begin:
                continue
            result.append(
                Interval(
                    kind=kind,
                    value=mark.value,
                    definition_id=mark.definition_id,
                    start_ms=begin,
                    end_ms=end,
                    since_ms=mark.event_ms,
                    uncertain_ms=_overlap(begin, end, gaps),
                    source=mark.source,
                )
            )
    result.sort(key=lambda interval: (interval.start_ms, interval.kind))
    return result
