"""The ingest path's counter and histogram expose what prometheus-client's would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from monitor.metric_types import FastCounter, FastHistogram

BUCKETS = (0.05, 0.25, 1, 10, 60)
_values = st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.sampled_from(BUCKETS)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), _values), max_size=50))
def test_histogram_renders_as_prometheus_client_does(observations: list[tuple[str, float]]) -> None:
    """Any observations give the same exposition text as prometheus-client's Histogram."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastHistogram("x_seconds", "Help.", ["k"], ours, BUCKETS)
    slow = Histogram("x_seconds", "Help.", ["k"], buckets=BUCKETS, registry=theirs)
    for label, value in observations:
        fast.labels(label).observe(value)
        slow.labels(label).observe(value)
    assert generate_latest(ours).strip() == _without_created(theirs)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 5)), max_size=50))
def test_counter_renders_as_prometheus_client_does(increments: list[tuple[str, int]]) -> None:
    """Any increments give the same exposition text as prometheus-client's Counter."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastCounter("y_total", "Help.", ["k"], ours)
    slow = Counter("y_total", "Help.", ["k"], registry=theirs)
    for label, amount in increments:
        fast.labels(label).inc(amount)
        slow.labels(label).inc(amount)
    assert generate_latest(ours).strip() == _without_created(theirs)


def _without_created(registry: CollectorRegistry) -> bytes:
    """prometheus-client's exposition without the `_created` samples (the monitor turns them
    off)."""
    lines = generate_latest(registry).splitlines()
    return b"\n".join(line for line in lines if b"_created" not in line).strip()


def test_misuse_is_refused() -> None:
    """Wrong label counts, negative increments and unordered buckets raise ValueError."""
    registry = CollectorRegistry()
    counter = FastCounter("z_total", "Help.", ["k"], registry)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="only go up"):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError, match="increasing"):
        FastHistogram("h", "Help.", [], registry, (5, 1))
    with pytest.raises(ValueError, match="Duplicated"):
        FastCounter("z_total", "Again.", [], registry)  # the registry refuses a duplicate name
