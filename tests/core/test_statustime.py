"""Time in status: local days across DST, gap merging, per-day totals and agent intervals."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.statustime import (
    DayAccumulator,
    GapIndex,
    Totals,
    day_start_ms,
    days_between,
    merge_intervals,
)
from monitor.core.timeline import Mark, intervals

HOUR = 3_600_000
BERLIN = ZoneInfo("Europe/Berlin")


def utc_ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


# --- days ------------------------------------------------------------------------------------------


def test_days_in_berlin_have_23_24_and_25_hours_around_dst() -> None:
    """A local day is 23 hours when clocks go forward, 25 when they go back, else 24."""
    spring = days_between(date(2026, 3, 28), date(2026, 3, 30), BERLIN)
    assert [(d.end_ms - d.start_ms) // HOUR for d in spring] == [24, 23, 24]
    autumn = days_between(date(2026, 10, 24), date(2026, 10, 26), BERLIN)
    assert [(d.end_ms - d.start_ms) // HOUR for d in autumn] == [24, 25, 24]
    assert spring[1].start_ms == utc_ms(2026, 3, 28, 23)  # midnight CET
    assert spring[2].start_ms == utc_ms(2026, 3, 29, 22)  # midnight CEST


def test_days_follow_each_other_without_holes() -> None:
    """Each day ends where the next begins, over a whole year in a DST zone."""
    days = days_between(date(2026, 1, 1), date(2026, 12, 31), BERLIN)
    assert len(days) == 365
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(days))
    assert sum(d.end_ms - d.start_ms for d in days) == 365 * 24 * HOUR


def test_a_day_whose_midnight_is_skipped_starts_after_the_gap() -> None:
    """Where DST skips midnight (Chile), the day starts at the first instant after the gap."""
    santiago = ZoneInfo("America/Santiago")
    start = day_start_ms(date(2026, 9, 6), santiago)
    local = datetime.fromtimestamp(start / 1000, santiago)
    assert (local.date(), local.hour, local.minute) == (date(2026, 9, 6), 1, 0)
    (day,) = days_between(date(2026, 9, 6), date(2026, 9, 6), santiago)
    assert day.end_ms - day.start_ms == 23 * HOUR


def test_reversed_days_are_refused() -> None:
    """A last day before the first day is an error, not an empty list."""
    with pytest.raises(ValueError, match="before"):
        days_between(date(2026, 3, 2), date(2026, 3, 1), BERLIN)


# --- gaps ------------------------------------------------------------------------------------------


def test_merge_intervals_joins_overlapping_and_touching_ones() -> None:
    """Overlapping and touching intervals merge; empty ones vanish; the result is ordered."""
    assert merge_intervals([(5, 8), (1, 3), (3, 4), (7, 10), (12, 12)]) == ((1, 4), (5, 10))


def test_gap_index_gives_each_agent_its_own_and_the_shared_gaps() -> None:
    """An agent gets the gaps of its channels plus the monitor-wide ones, clipped to the day."""
    index = GapIndex(100, 200, every=[(90, 120)], some=[(["a"], 150, 260), (["a", "b"], 110, 130)])
    assert index.of("a") == ((100, 130), (150, 200))
    assert index.of("b") == ((100, 130),)
    assert index.of("c") == ((100, 120),)


# --- the day accumulator ---------------------------------------------------------------------------


def run_day(
    rows: list[tuple[str, str, int, str]],
    start: int = 0,
    end: int = 100,
    openings: dict[tuple[str, str], str] | None = None,
    gaps: GapIndex[str] | None = None,
) -> tuple[dict[tuple[str, str, str], Totals], dict[tuple[str, str], str]]:
    accumulator = DayAccumulator(start, end, openings or {}, gaps or GapIndex(start, end))
    accumulator.add(rows)
    result = accumulator.finish()
    return result.totals, result.closing


def test_opening_status_counts_from_the_start_of_the_day_without_an_entry() -> None:
    """The status carried in at midnight counts from the start, but is not a transition into it."""
    totals, closing = run_day(
        [("a", "presence", 30, "BREAK")], openings={("a", "presence"): "ON_QUEUE"}
    )
    assert totals[("a", "presence", "ON_QUEUE")] == Totals(30, 0, 0, 30)
    assert totals[("a", "presence", "BREAK")] == Totals(70, 0, 1, 70)
    assert closing == {("a", "presence"): "BREAK"}


def test_nothing_is_counted_before_an_agent_is_first_seen() -> None:
    """Without an opening, time before the first row is unknown, and the first row no entry."""
    totals, _ = run_day([("a", "routing", 40, "IDLE")])
    assert totals == {("a", "routing", "IDLE"): Totals(60, 0, 0, 60)}


def test_a_row_repeating_the_status_is_a_boundary_not_an_entry() -> None:
    """A re-entry (same value again) neither counts as a transition nor ends the stretch."""
    rows = [("a", "presence", 10, "BREAK"), ("a", "presence", 50, "BREAK")]
    totals, _ = run_day(rows, openings={("a", "presence"): "ON_QUEUE"})
    assert totals[("a", "presence", "BREAK")] == Totals(90, 0, 1, 90)


def test_rows_at_one_time_are_one_change_won_by_the_larger_value() -> None:
    """Two rows at the same event time: the larger value holds, the other never existed."""
    rows = [("a", "routing", 20, "INTERACTING"), ("a", "routing", 20, "IDLE")]
    totals, closing = run_day(rows, openings={("a", "routing"): "OFF_QUEUE"})
    assert set(totals) == {("a", "routing", "OFF_QUEUE"), ("a", "routing", "INTERACTING")}
    assert totals[("a", "routing", "INTERACTING")].entries == 1
    assert closing[("a", "routing")] == "INTERACTING"


def test_time_inside_a_gap_is_uncertain_and_splits_the_stretch() -> None:
    """The part of a status inside a gap is counted apart, and the longest stretch stops there."""
    gaps = GapIndex(0, 100, some=[(["a"], 40, 55)])
    totals, _ = run_day([], openings={("a", "presence"): "ON_QUEUE"}, gaps=gaps)
    assert totals[("a", "presence", "ON_QUEUE")] == Totals(85, 15, 0, 45)
    other, _ = run_day([], openings={("b", "presence"): "ON_QUEUE"}, gaps=gaps)
    assert other[("b", "presence", "ON_QUEUE")] == Totals(100, 0, 0, 100)


def test_rows_out_of_order_or_outside_the_day_are_refused() -> None:
    """The accumulator checks its input instead of counting negative time."""
    with pytest.raises(ValueError, match="order"):
        run_day([("a", "presence", 50, "A"), ("a", "presence", 40, "B")])
    with pytest.raises(ValueError, match="outside"):
        run_day([("a", "presence", 100, "A")])


VALUES = st.sampled_from(["A", "B", "C"])


@st.composite
def days(draw: st.DrawFn) -> tuple[int, list[tuple[int, str]], str | None, list[tuple[int, int]]]:
    end = draw(st.integers(1, 80))
    rows = draw(st.lists(st.tuples(st.integers(0, end - 1), VALUES), max_size=12))
    opening = draw(st.none() | VALUES)
    gaps = draw(st.lists(st.tuples(st.integers(0, end), st.integers(0, end)), max_size=3))
    return end, rows, opening, [(min(g), max(g)) for g in gaps]


def brute_force(
    end: int, rows: list[tuple[int, str]], opening: str | None, gaps: list[tuple[int, int]]
) -> dict[str, Totals]:
    """Time in status one millisecond at a time: slow, obviously right."""
    changes: dict[int, str] = {}
    for t, changed in rows:
        changes[t] = max(changes.get(t, changed), changed)
    totals: dict[str, Totals] = {}
    value: str | None = opening
    run = 0
    for ms in range(end):
        if ms in changes:
            before, value = value, changes[ms]
            if before is not None and changes[ms] != before:
                totals.setdefault(changes[ms], Totals()).entries += 1
                run = 0
        if value is None:
            continue
        total = totals.setdefault(value, Totals())
        if any(s <= ms < e for s, e in gaps):
            total.uncertain_ms += 1
            run = 0
        else:
            total.ms += 1
            run += 1
            total.longest_ms = max(total.longest_ms, run)
    return totals


@given(days())
def test_accumulator_agrees_with_counting_every_millisecond(
    day: tuple[int, list[tuple[int, str]], str | None, list[tuple[int, int]]],
) -> None:
    """For any rows, opening and gaps, the totals equal a millisecond-by-millisecond count."""
    end, rows, opening, gaps = day
    ordered = sorted(rows, key=lambda row: row[0])  # ties stay in drawn order, any order
    openings = {} if opening is None else {("a", "presence"): opening}
    totals, _ = run_day(
        [("a", "presence", t, v) for t, v in ordered],
        0,
        end,
        openings,
        GapIndex(0, end, some=[(["a"], s, e) for s, e in gaps]),
    )
    expected = brute_force(end, rows, opening, gaps)
    assert {status: t for (_, _, status), t in totals.items()} == expected


# --- one agent's intervals -------------------------------------------------------------------------


def test_intervals_carry_the_opening_and_mark_the_uncertain_part() -> None:
    """The status before the window opens it; each interval knows when it began and its gap."""
    found = intervals(
        [Mark("presence", 40, "BREAK", "def-break", "live"), Mark("routing", 40, "OFF_QUEUE")],
        {"presence": Mark("presence", -500, "ON_QUEUE", "def-on", "snapshot")},
        0,
        100,
        gaps=[(30, 50)],
    )
    assert [(i.kind, i.value, i.start_ms, i.end_ms, i.since_ms, i.uncertain_ms) for i in found] == [
        ("presence", "ON_QUEUE", 0, 40, -500, 10),
        ("presence", "BREAK", 40, 100, 40, 10),
        ("routing", "OFF_QUEUE", 40, 100, 40, 10),
    ]
    assert found[0].source == "snapshot"
    assert found[1].definition_id == "def-break"


def test_intervals_settle_same_time_rows_like_the_tracker() -> None:
    """Rows at one time are one change: the larger (value, definition) wins."""
    found = intervals(
        [Mark("presence", 10, "BREAK", "b"), Mark("presence", 10, "BREAK", "c")], {}, 0, 20
    )
    assert [(i.value, i.definition_id, i.start_ms) for i in found] == [("BREAK", "c", 10)]
