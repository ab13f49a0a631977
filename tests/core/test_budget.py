"""The request budget: a sliding one-minute window with a pause for Retry-After."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.budget import RateBudget


def test_whole_minute_allowance_goes_at_once() -> None:
    """A cold start may send the whole minute's allowance in one burst, then must wait."""
    budget = RateBudget(per_minute=5)
    assert [budget.reserve(0.0) for _ in range(5)] == [0.0] * 5
    assert budget.reserve(1.0) == pytest.approx(59.0)


def test_slots_free_as_sends_leave_the_window() -> None:
    """Once a send is a minute old its slot is free again."""
    budget = RateBudget(per_minute=2)
    budget.reserve(0.0)
    budget.reserve(30.0)
    assert budget.reserve(45.0) == pytest.approx(15.0)
    assert budget.reserve(100.0) == 0.0


def test_pause_holds_every_request_until_retry_after() -> None:
    """After a 429 nobody sends before the pause ends, even with budget left."""
    budget = RateBudget(per_minute=300)
    budget.pause_until(10.0)
    assert budget.reserve(1.0) == pytest.approx(9.0)
    assert budget.reserve(10.0) == 0.0


def test_refuses_a_zero_rate() -> None:
    """A budget of zero requests a minute is a configuration error, not an endless wait."""
    with pytest.raises(ValueError, match="positive"):
        RateBudget(per_minute=0)


@given(
    st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), min_size=1, max_size=120),
    st.integers(min_value=1, max_value=20),
)
def test_no_window_ever_holds_more_than_the_allowance(times: list[float], limit: int) -> None:
    """Whatever the arrival pattern, no 60-second window holds more than per_minute sends."""
    budget = RateBudget(per_minute=limit)
    sends = [t + budget.reserve(t) for t in sorted(times)]
    assert sends == sorted(sends)
    for i, start in enumerate(sends):
        inside = [s for s in sends[i:] if s < start + 60.0]
        assert len(inside) <= limit
