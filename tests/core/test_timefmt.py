"""ISO-8601 timestamps <-> epoch milliseconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.timefmt import format_iso_ms, parse_iso_ms


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
