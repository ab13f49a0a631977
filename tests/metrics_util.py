"""Reading metric values in tests. Holds no tests."""

from __future__ import annotations

from monitor.metrics import Metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one sample (0 when it was never set)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
