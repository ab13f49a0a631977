"""ISO-8601 timestamps <-> epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.timefmt import format_iso_ms, parse_iso_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_genesys_form() -> None:
    """Genesys's millisecond `Z` form parses exactly."""
    assert parse_iso_ms("2024-05-14T09:03:17.067Z") == 1715677397067


def test_other_forms() -> None:
    """No milliseconds, an offset, and no zone (UTC) are understood."""
    assert parse_iso_ms("2024-05-14T09:03:17Z") == 1715677397000
    assert parse_iso_ms("2024-05-14T11:03:17.067+02:00") == 1715677397067
    assert parse_iso_ms("2024-05-14T09:03:17.067") == 1715677397067


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "1715677397067"])
def test_malformed_is_a_value_error(bad: str) -> None:
    """Anything that is not a timestamp raises ValueError."""
    with pytest.raises(ValueError, match=r"."):
        parse_iso_ms(bad)


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_round_trip(epoch_ms: int) -> None:
    """Formatting then parsing gives back the same millisecond."""
    text = format_iso_ms(epoch_ms)
    assert text.endswith("Z")
    assert parse_iso_ms(text) == epoch_ms


@given(
    st.integers(min_value=0, max_value=253_402_300_799_999),
    st.integers(min_value=11, max_value=22),
    st.characters(codec="utf-8"),
)
def test_genesys_form_with_one_character_changed(epoch_ms: int, at: int, char: str) -> None:
    """Changing one character of a Genesys timestamp gives what the standard parser gives, or
    the same ValueError: the fast paths for that form (its hour known, its second known) accept
    nothing the standard parser would refuse."""
    text = format_iso_ms(epoch_ms)
    parse_iso_ms(text)  # its hour is now known
    parse_iso_ms(text)  # and its second: both fast paths are taken below
    changed = text[:at] + char + text[at + 1 :]
    try:
        expected: int | None = (datetime.fromisoformat(changed) - EPOCH) // timedelta(
            milliseconds=1
        )
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=r"."):  # whatever the standard parser says
            parse_iso_ms(changed)
    else:
        assert parse_iso_ms(changed) == expected
