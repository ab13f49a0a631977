"""Cron expressions: parsing, next fire times, month ends, leap years and both DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.cron import CronSpec, next_fire, parse

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(text: str) -> int:
    """Epoch ms of an ISO timestamp with offset."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def local(instant_ms: int, tz: ZoneInfo) -> str:
    """An instant as wall time with offset in `tz`, for readable assertions."""
    return datetime.fromtimestamp(instant_ms / 1000, tz).isoformat()


def fires(expr: str, start: str, tz: ZoneInfo, count: int) -> list[str]:
    """The next `count` fire times after `start`, as local ISO strings."""
    out, at = [], ms(start)
    for _ in range(count):
        at = next_fire(expr, at, tz)
        out.append(local(at, tz))
    return out


# --- parsing ------------------------------------------------------------------------------------


def test_parse_fields() -> None:
    """Lists, ranges, steps, names and Sunday as 7 parse into the matching sets."""
    spec = parse("0,30 8-17/3 1,15 JAN-mar,Dec MON-FRI,7")
    assert spec.minutes == (0, 30)
    assert spec.hours == (8, 11, 14, 17)
    assert spec.days == {1, 15}
    assert spec.months == {1, 2, 3, 12}
    assert spec.weekdays == {0, 1, 2, 3, 4, 5}
    assert spec.day_or


def test_parse_star_steps_and_open_steps() -> None:
    """`*/n` steps from the field's start; `a/n` runs from a to the field's end."""
    spec = parse("*/20 5/6 * * *")
    assert spec.minutes == (0, 20, 40)
    assert spec.hours == (5, 11, 17, 23)
    assert not spec.day_or


def test_macros() -> None:
    """@daily and friends are the usual five-field expressions."""
    assert parse("@daily").minutes == (0,)
    assert parse("@hourly").hours == tuple(range(24))
    assert parse("@weekly").weekdays == {0}
    assert parse("@yearly").months == {1}


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "must have 5 fields"),
        ("* * * *", "must have 5 fields"),
        ("* * * * * *", "must have 5 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range"),
        ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range"),
        ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
        ("* * * FOO *", "month: 'FOO' is not a number or a name"),
        ("* * * * MONDAY", "day-of-week: 'MONDAY' is not"),
        ("*/0 * * * *", "step '0' is not a positive number"),
        ("*/x * * * *", "step 'x' is not a positive number"),
        ("5-1 * * * *", "range '5-1' runs backwards"),
        ("1,,2 * * * *", "empty item"),
        ("? * * * *", "minute: '?' is not a number"),
        ("@reboot", "must have 5 fields"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ],
)
def test_bad_expressions_are_refused_clearly(expr: str, message: str) -> None:
    """A bad expression raises ValueError quoting it and naming the problem."""
    with pytest.raises(ValueError, match="cron expression") as caught:
        parse(expr)
    assert message in str(caught.value)


# --- next fire, no DST --------------------------------------------------------------------------


def test_next_weekday_morning() -> None:
    """A weekday job after Friday's run fires next on Monday."""
    assert fires("0 9 * * MON-FRI", "2024-05-17T10:00:00+00:00", UTC_ZONE, 2) == [
        "2024-05-20T09:00:00+00:00",
        "2024-05-21T09:00:00+00:00",
    ]


def test_strictly_after() -> None:
    """A fire time equal to `after` is not returned again."""
    at = ms("2024-05-17T09:00:00+00:00")
    assert next_fire("0 9 * * *", at, UTC_ZONE) == ms("2024-05-18T09:00:00+00:00")
    assert next_fire("0 9 * * *", at - 1, UTC_ZONE) == at


def test_wall_time_of_the_zone() -> None:
    """The expression is read in the zone's wall time."""
    assert fires("0 9 * * *", "2024-07-01T00:00:00+00:00", BERLIN, 1) == [
        "2024-07-01T09:00:00+02:00"
    ]
    assert fires("0 9 * * *", "2024-07-01T00:00:00+00:00", NEW_YORK, 1) == [
        "2024-07-01T09:00:00-04:00"
    ]


def test_parsed_spec_is_accepted() -> None:
    """next_fire takes a parsed CronSpec as well as text."""
    spec: CronSpec = parse("15 * * * *")
    assert next_fire(spec, ms("2024-05-17T09:20:00+00:00"), UTC_ZONE) == ms(
        "2024-05-17T10:15:00+00:00"
    )


def test_end_of_month_skips_short_months() -> None:
    """Day 31 fires only in months that have one; day 30 skips February."""
    assert fires("0 0 31 * *", "2024-04-15T00:00:00+00:00", UTC_ZONE, 3) == [
        "2024-05-31T00:00:00+00:00",
        "2024-07-31T00:00:00+00:00",
        "2024-08-31T00:00:00+00:00",
    ]
    assert fires("0 0 30 * *", "2025-01-31T00:00:00+00:00", UTC_ZONE, 1) == [
        "2025-03-30T00:00:00+00:00"
    ]


def test_year_end_rollover() -> None:
    """A January-only job after December fires in the next year."""
    assert fires("0 6 1 JAN *", "2024-12-31T23:59:00+00:00", UTC_ZONE, 1) == [
        "2025-01-01T06:00:00+00:00"
    ]


def test_leap_day() -> None:
    """29 February fires only in leap years, skipping 2100, which is not one."""
    assert fires("0 0 29 2 *", "2025-03-01T00:00:00+00:00", UTC_ZONE, 1) == [
        "2028-02-29T00:00:00+00:00"
    ]
    assert fires("0 0 29 2 *", "2096-03-01T00:00:00+00:00", UTC_ZONE, 1) == [
        "2104-02-29T00:00:00+00:00"
    ]


def test_day_of_month_or_day_of_week() -> None:
    """Both day fields restricted: either matches (Vixie), so the 13th and every Friday fire."""
    assert fires("0 0 13 * FRI", "2024-09-01T00:00:00+00:00", UTC_ZONE, 4) == [
        "2024-09-06T00:00:00+00:00",
        "2024-09-13T00:00:00+00:00",
        "2024-09-20T00:00:00+00:00",
        "2024-09-27T00:00:00+00:00",
    ]


def test_star_day_field_means_both_must_match() -> None:
    """A day field starting with * makes both required (Vixie): odd days that are Mondays."""
    assert fires("0 0 */2 * MON", "2024-01-01T00:00:00+00:00", UTC_ZONE, 2) == [
        "2024-01-15T00:00:00+00:00",
        "2024-01-29T00:00:00+00:00",
    ]


# --- DST ----------------------------------------------------------------------------------------


def test_berlin_spring_gap_fires_once_after_the_gap() -> None:
    """02:30 does not exist on 31 March 2024 in Berlin: the job fires at 03:00 CEST instead."""
    assert fires("30 2 * * *", "2024-03-30T12:00:00+01:00", BERLIN, 3) == [
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]


def test_several_times_in_one_gap_fire_once() -> None:
    """Four matching times inside the gap, and 03:00 itself, make a single fire."""
    assert fires("*/15 2,3 * * *", "2024-03-31T01:50:00+01:00", BERLIN, 3) == [
        "2024-03-31T03:00:00+02:00",
        "2024-03-31T03:15:00+02:00",
        "2024-03-31T03:30:00+02:00",
    ]


def test_berlin_autumn_fold_fires_at_first_occurrence_only() -> None:
    """02:30 happens twice on 27 October 2024 in Berlin: the job runs at 02:30 CEST only."""
    assert fires("30 2 * * *", "2024-10-26T12:00:00+02:00", BERLIN, 2) == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]


def test_half_hourly_through_the_fold_skips_the_repeated_hour() -> None:
    """Through the fold, the repeated wall times are not fired a second time."""
    assert fires("*/30 * * * *", "2024-10-27T01:45:00+02:00", BERLIN, 4) == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T03:00:00+01:00",
        "2024-10-27T03:30:00+01:00",
    ]


def test_starting_inside_the_second_occurrence() -> None:
    """From inside the repeated hour, the next fire is after it, not a repeat of a fired time."""
    assert fires("*/30 * * * *", "2024-10-27T02:10:00+01:00", BERLIN, 1) == [
        "2024-10-27T03:00:00+01:00"
    ]


def test_new_york_spring_forward() -> None:
    """New York, 10 March 2024: 02:30 does not exist, so the job runs at 03:00 EDT."""
    assert fires("30 2 * * *", "2024-03-09T12:00:00-05:00", NEW_YORK, 2) == [
        "2024-03-10T03:00:00-04:00",
        "2024-03-11T02:30:00-04:00",
    ]


def test_new_york_fall_back() -> None:
    """New York, 3 November 2024: 01:30 happens twice; the job runs at 01:30 EDT only."""
    assert fires("30 1 * * *", "2024-11-02T12:00:00-04:00", NEW_YORK, 2) == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_far_future_is_a_clear_error() -> None:
    """Asking past the year 9999 raises ValueError, not OverflowError."""
    with pytest.raises(ValueError, match="does not fire after"):
        next_fire("0 0 1 1 *", ms("9999-06-01T00:00:00+00:00"), UTC_ZONE)


# --- properties ---------------------------------------------------------------------------------

ZONES = [BERLIN, NEW_YORK, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Pacific/Apia"), UTC_ZONE]
# Instants near DST changes of those zones (Lord Howe moves by 30 minutes; Apia skipped a day).
ANCHORS = [
    ms("2024-03-31T01:00:00+00:00"),
    ms("2024-10-27T01:00:00+00:00"),
    ms("2024-03-10T07:00:00+00:00"),
    ms("2024-11-03T06:00:00+00:00"),
    ms("2024-04-06T15:00:00+00:00"),
    ms("2024-10-05T15:30:00+00:00"),
    ms("2011-12-30T10:00:00+00:00"),
]


def subset(low: int, high: int) -> st.SearchStrategy[str]:
    return st.sets(st.integers(low, high), min_size=1, max_size=4).map(
        lambda values: ",".join(map(str, sorted(values)))
    )


daily_expressions = st.builds(
    lambda minutes, hours: f"{minutes} {hours} * * *", subset(0, 59), subset(0, 23)
)


def _wall(instant_ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(instant_ms / 1000, tz)


def _matches(spec: CronSpec, wall: datetime) -> bool:
    return wall.minute in spec.minutes and wall.hour in spec.hours and spec.matches_day(wall.date())


def _gap_before(instant_ms: int, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The skipped wall times [start, end) if the clocks jumped forward exactly at `instant_ms`."""
    before = _wall(instant_ms - 1000, tz).replace(tzinfo=None) + timedelta(seconds=1)
    after = _wall(instant_ms, tz).replace(tzinfo=None)
    return (before, after) if after > before else None


def _gap_has_match(spec: CronSpec, gap: tuple[datetime, datetime]) -> bool:
    wall = gap[0]
    while wall < gap[1]:
        if _matches(spec, wall):
            return True
        wall += timedelta(minutes=1)
    return False


def _should_fire(spec: CronSpec, instant_ms: int, tz: ZoneInfo) -> bool:
    """The policy stated independently: a matching first occurrence, or right after a gap."""
    wall = _wall(instant_ms, tz)
    if wall.fold == 0 and _matches(spec, wall):
        return True
    gap = _gap_before(instant_ms, tz)
    return gap is not None and _gap_has_match(spec, gap)


@settings(max_examples=60, deadline=None)
@given(
    expr=daily_expressions,
    tz=st.sampled_from(ZONES),
    anchor=st.sampled_from(ANCHORS),
    offset_min=st.integers(-26 * 60, 26 * 60),
)
def test_fires_exactly_by_policy_around_dst(
    expr: str, tz: ZoneInfo, anchor: int, offset_min: int
) -> None:
    """Fires strictly increase, never repeat a wall time in a fold, and none is skipped."""
    spec = parse(expr)
    after = anchor + offset_min * 60_000
    seen_walls: set[datetime] = set()
    for _ in range(3):
        fire = next_fire(spec, after, tz)
        assert fire > after
        assert _should_fire(spec, fire, tz)
        wall = _wall(fire, tz).replace(tzinfo=None)
        assert wall not in seen_walls
        seen_walls.add(wall)
        # Every whole minute in between must not have been due (zones here move by minutes).
        minute = (after // 60_000 + 1) * 60_000
        while minute < fire:
            assert not _should_fire(spec, minute, tz), local(minute, tz)
            minute += 60_000
        after = fire
