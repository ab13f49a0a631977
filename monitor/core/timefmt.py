"""ISO-8601 timestamps as Genesys writes them (`2024-05-14T09:03:17.067Z`) <-> epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 date-time; without a zone it is UTC.

    Accepts `Z` or a numeric offset and any number of fractional digits (truncated to the
    millisecond). Raises ValueError for anything else, including a date without a time.
    """
    # Genesys's own form, `2024-05-14T09:03:17.067Z`, comes with every event: its second is
    # looked up (events come in bursts within the same few seconds), failing that its hour, and
    # only the rest is read here.
    if type(text) is str and len(text) == 24 and text[23] == "Z" and text[19] == ".":
        millis = text[20:23]
        if millis.isdigit() and millis.isascii():
            second_ms = _SECONDS.get(text[:19])
            if second_ms is not None:
                return second_ms + int(millis)
            hour_ms = _HOURS.get(text[:13])
            tail = text[14:16] + text[17:19]
            if (
                hour_ms is not None
                and text[13] == ":"
                and text[16] == ":"
                and tail.isascii()
                and tail.isdigit()
            ):
                minutes, seconds = int(tail[:2]), int(tail[2:])
                if minutes < 60 and seconds < 60:
                    second_ms = hour_ms + minutes * 60_000 + seconds * 1000
                    _remember(_SECONDS, text[:19], second_ms, _SECONDS_KEPT)
                    return second_ms + int(millis)
    # fromisoformat also takes a bare date; a Genesys timestamp always has a time.
    if not isinstance(text, str) or len(text) < 11 or ("T" not in text and " " not in text):
        raise ValueError(f"not a timestamp: {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, OverflowError):
        raise ValueError(f"not a timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Timedelta floor division is exact; float timestamps could be off by one millisecond.
    epoch_ms: int = (moment - _EPOCH) // _MS
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        _remember(_HOURS, text[:13], epoch_ms - epoch_ms % 3_600_000, _HOURS_KEPT)
    return epoch_ms


def _remember(table: dict[str, int], key: str, value: int, kept: int) -> None:
    # Emptied when full rather than trimmed: refilling costs one slower parse per key, and the
    # keys of any moment (the current second, the current hour) come back at once.
    if len(table) >= kept:
        table.clear()
    table[key] = value


def format_iso_ms(epoch_ms: int) -> str:
    """`2024-05-14T09:03:17.067Z` for an epoch-milliseconds time."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# `YYYY-MM-DDTHH` -> epoch ms of that hour (UTC), for the hours seen lately.
_HOURS: dict[str, int] = {}
_HOURS_KEPT = 256
# `YYYY-MM-DDTHH:MM:SS` -> epoch ms of that second, for the seconds seen lately.
_SECONDS: dict[str, int] = {}
_SECONDS_KEPT = 4096
_MS = timedelta(milliseconds=1)
