"""Retry delays: jittered exponential backoff, and the official Genesys retry policy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.backoff import Backoff, retry_delay


class FixedRandom(random.Random):
    """A Random whose draws are always the same fraction, to see the ceilings exactly."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


def test_ceilings_double_up_to_the_cap() -> None:
    """With the top draw, delays are base * 2**n until they reach the cap, then stay there."""
    backoff = Backoff(0.5, 10.0, FixedRandom(1.0))
    assert [backoff.next() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff.attempts == 8


def test_full_jitter_draws_between_zero_and_ceiling() -> None:
    """Each delay is the injected random fraction of the current ceiling."""
    backoff = Backoff(1.0, 60.0, FixedRandom(0.25))
    assert [backoff.next() for _ in range(3)] == [0.25, 0.5, 1.0]


def test_reset_starts_again_from_base() -> None:
    """reset() brings the ceiling back to base."""
    backoff = Backoff(1.0, 60.0, FixedRandom(1.0))
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next() == 1.0


def test_same_seed_same_delays() -> None:
    """Delays depend only on the injected Random, so a seed reproduces them."""
    first = Backoff(0.1, 30.0, random.Random(7))
    second = Backoff(0.1, 30.0, random.Random(7))
    assert [first.next() for _ in range(20)] == [second.next() for _ in range(20)]


def test_long_outage_stays_finite() -> None:
    """Thousands of attempts never overflow: the ceiling stays at the cap."""
    backoff = Backoff(0.001, 5.0, FixedRandom(1.0))
    for _ in range(5000):
        delay = backoff.next()
    assert delay == 5.0


@pytest.mark.parametrize(
    ("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0), (1.0, float("inf"))]
)
def test_bad_parameters_are_refused(base: float, cap: float) -> None:
    """base must be positive and no larger than a finite cap."""
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base, cap, random.Random(0))


@given(
    base=st.floats(0.001, 10.0),
    factor=st.floats(1.0, 1000.0),
    seed=st.integers(0, 2**32),
    count=st.integers(1, 60),
)
def test_delays_stay_within_zero_and_cap(base: float, factor: float, seed: int, count: int) -> None:
    """Every delay lies between 0 and the cap."""
    backoff = Backoff(base, base * factor, random.Random(seed))
    for _ in range(count):
        assert 0.0 <= backoff.next() <= backoff.cap


def test_429_honours_retry_after_or_three_seconds() -> None:
    """On 429 wait Retry-After, or 3 s when the header is missing, on every attempt."""
    assert retry_delay(429, 17.0, attempt=1, elapsed_s=0.0) == 17.0
    assert retry_delay(429, None, attempt=1, elapsed_s=0.0) == 3.0
    assert retry_delay(429, 5.0, attempt=40, elapsed_s=3600.0) == 5.0


def test_429_with_long_retry_after_gives_up() -> None:
    """A Retry-After beyond the maximum (a daily cap) means give up, not wait."""
    assert retry_delay(429, 181.0, attempt=1, elapsed_s=0.0) is None
    assert retry_delay(429, 180.0, attempt=1, elapsed_s=0.0) == 180.0
    assert retry_delay(429, 61.0, attempt=1, elapsed_s=0.0, max_retry_after_s=60.0) is None


def test_5xx_uses_retry_after_for_the_first_five_retries() -> None:
    """On 502/503/504, the first five retries honour Retry-After (3 s if missing)."""
    assert [retry_delay(503, 2.0, attempt=n, elapsed_s=0.0) for n in range(1, 6)] == [2.0] * 5
    assert retry_delay(502, None, attempt=5, elapsed_s=0.0) == 3.0
    assert retry_delay(504, 500.0, attempt=2, elapsed_s=0.0) is None


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, 3.0), (299.9, 3.0), (300.0, 9.0), (599.9, 9.0), (600.0, 27.0), (86_400.0, 27.0)],
)
def test_5xx_backs_off_in_steps_after_five_retries(elapsed: float, expected: float) -> None:
    """After five retries, 5xx waits 3 s for the first 5 minutes, 9 s for the next 5, then 27 s."""
    assert retry_delay(503, 1.0, attempt=6, elapsed_s=elapsed) == expected


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409, 500, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    """Only 429, 502, 503 and 504 are retried."""
    assert retry_delay(status, 1.0, attempt=1, elapsed_s=0.0) is None


def test_optional_bounds_on_attempts_and_time() -> None:
    """max_attempts and max_elapsed_s end retrying when given."""
    assert retry_delay(503, None, attempt=3, elapsed_s=0.0, max_attempts=3) == 3.0
    assert retry_delay(503, None, attempt=4, elapsed_s=0.0, max_attempts=3) is None
    assert retry_delay(429, None, attempt=1, elapsed_s=59.0, max_elapsed_s=60.0) == 3.0
    assert retry_delay(429, None, attempt=1, elapsed_s=60.0, max_elapsed_s=60.0) is None


def test_nonsensical_retry_after() -> None:
    """A negative Retry-After means retry at once (never a negative sleep); NaN means give up."""
    assert retry_delay(429, -5.0, attempt=1, elapsed_s=0.0) == 0.0
    assert retry_delay(429, float("nan"), attempt=1, elapsed_s=0.0) is None
