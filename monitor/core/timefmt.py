"""ISO-8601 timestamps as Genesys writes them (`2024-05-14T09:03:17.067Z`) <-> epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def parse_iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 date-time; without a zone it is UTC.

    Accepts `Z` or a numeric offset and any number of fractional digits (truncated to the
    millisecond). Raises ValueError for anything else, including a date without a time.
    """
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
    return (moment - _EPOCH) // _MS


def format_iso_ms(epoch_ms: int) -> str:
    """`2024-05-14T09:03:17.067Z` for an epoch-milliseconds time."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
