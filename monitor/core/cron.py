"""Five-field cron expressions, and the next time one fires in a given time zone.

Syntax (as Vixie cron): `minute hour day-of-month month day-of-week`, each field `*`, a number, a
range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from a to the field's end), or a comma-separated list
of these. Months and weekdays also take English names (`JAN`..`DEC`, `SUN`..`SAT`, any case);
weekday 0 and 7 are both Sunday. The macros `@yearly`, `@annually`, `@monthly`, `@weekly`,
`@daily`, `@midnight` and `@hourly` are accepted.

Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted (neither
field starts with `*`), a day matches if *either* matches; otherwise both must.

Expressions are evaluated in the wall-clock time of the given zone. DST policy:

- A wall time that does not exist (the spring-forward gap) fires once, at the first instant after
  the gap: `30 2 * * *` in Europe/Berlin fires at 03:00 CEST on the day clocks go forward. Several
  matching times inside one gap still fire only once.
- A wall time that occurs twice (the autumn fold) fires once, at its first occurrence (fold=0):
  `30 2 * * *` fires at 02:30 CEST, not again at 02:30 CET.

So a daily job runs exactly once on every local date, which is what a presence reset needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

__all__ = ["CronSpec", "next_fire", "parse"]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_WEEKDAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, lowest, highest, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int] | None], ...] = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _WEEKDAYS),
)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February in a leap year

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)
# 400 years is one full Gregorian cycle: every combination of date and weekday that can occur
# does within it, so a search that finds nothing in that span never will.
_SEARCH_DAYS = 400 * 366


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed cron expression. Weekdays are 0 (Sunday) to 6."""

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # Vixie cron: both day fields restricted means either may match.
    day_or: bool

    def matches_day(self, day: date) -> bool:
        """Whether the expression fires at some time of this (local) date."""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        return (by_date or by_weekday) if self.day_or else (by_date and by_weekday)


def _value(token: str, field: str, low: int, high: int, names: dict[str, int] | None) -> int:
    if token.isascii() and token.isdigit():
        number = int(token)
    elif names is not None and token.upper() in names:
        number = names[token.upper()]
    else:
        allowed = f"a number or a name like {next(iter(names))}" if names else "a number"
        raise ValueError(f"{field}: {token!r} is not {allowed}")
    if not low <= number <= high:
        raise ValueError(f"{field}: {number} is out of range {low}-{high}")
    return number


def _field(text: str, field: str, low: int, high: int, names: dict[str, int] | None) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{field}: empty item in {text!r}")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise ValueError(f"{field}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, _, last = span.partition("-")
            start = _value(first, field, low, high, names)
            end = _value(last, field, low, high, names)
            if start > end:
                raise ValueError(f"{field}: range {span!r} runs backwards")
        else:
            start = _value(span, field, low, high, names)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return values


@lru_cache(maxsize=256)
def parse(expr: str) -> CronSpec:
    """Parse a cron expression; ValueError with a message naming the bad field otherwise."""
    text = " ".join(expr.split())
    text = _MACROS.get(text.lower(), text)
    parts = text.split(" ")
    if len(parts) != 5:
        raise ValueError(
            f"cron expression {expr!r} must have 5 fields "
            f"(minute hour day-of-month month day-of-week), not {len(parts) if text else 0}"
        )
    try:
        minutes, hours, days, months, weekdays = (
            _field(part, name, low, high, names)
            for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
        )
    except ValueError as exc:
        raise ValueError(f"cron expression {expr!r}: {exc}") from None
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    day_or = not parts[2].startswith("*") and not parts[4].startswith("*")
    spec = CronSpec(
        expr=expr,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        day_or=day_or,
    )
    # With both day fields required, a date that no month has (31 February) never fires.
    if not day_or and not any(d <= _MONTH_DAYS[m - 1] for m in months for d in days):
        raise ValueError(f"cron expression {expr!r} never fires: no such day in those months")
    return spec


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _gap_end_ms(wall: datetime, tz: tzinfo) -> int:
    """The instant a DST gap containing the non-existent `wall` ends (clocks jump past it)."""
    # fold=1 reads `wall` with the offset after the jump, fold=0 with the one before (PEP 495),
    # which for a time in a gap gives instants just before and just after the transition.
    low = _to_ms(wall.replace(tzinfo=tz, fold=1)) // 1000
    high = -(-_to_ms(wall.replace(tzinfo=tz, fold=0)) // 1000)
    # Smallest whole second whose wall time is past `wall`; tz transitions fall on whole seconds.
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high * 1000


def _instant_ms(wall: datetime, tz: tzinfo) -> int:
    """The instant a matching wall time fires at, by the DST policy in the module docstring."""
    first = wall.replace(tzinfo=tz)  # fold=0: the first occurrence if the time repeats
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return _to_ms(utc)
    return _gap_end_ms(wall, tz)


def next_fire(expr: str | CronSpec, after_utc_ms: int, tz: tzinfo) -> int:
    """The first fire instant (epoch ms) strictly after `after_utc_ms`, evaluated in `tz`.

    Raises ValueError for a bad expression, or if nothing fires before the year 9999.
    """
    spec = parse(expr) if isinstance(expr, str) else expr
    try:
        return _scan(spec, after_utc_ms, tz)
    except (OverflowError, ValueError):
        # Only date arithmetic past the year 9999 (or before 1) can fail here.
        pass
    raise ValueError(f"cron expression {spec.expr!r} does not fire after {after_utc_ms} ms")


def _scan(spec: CronSpec, after_utc_ms: int, tz: tzinfo) -> int:
    local = (_EPOCH + after_utc_ms * _MS).astimezone(tz)
    # Matching wall times map to instants in the same order (a gap's times all map to its end,
    # a fold's to their first occurrence), so everything before the current wall minute has
    # already fired, and the scan can start there.
    start = local.replace(tzinfo=None, second=0, microsecond=0)
    start_day = day = start.date()
    for _ in range(_SEARCH_DAYS):
        if day.month not in spec.months:
            # Skip the rest of the month at once.
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            continue
        if spec.matches_day(day):
            today = day == start_day
            for hour in spec.hours:
                if today and hour < start.hour:
                    continue
                for minute in spec.minutes:
                    if today and hour == start.hour and minute < start.minute:
                        continue
                    instant = _instant_ms(datetime(day.year, day.month, day.day, hour, minute), tz)
                    if instant > after_utc_ms:
                        return instant
        day += _ONE_DAY
    raise ValueError("no fire time within 400 years")
