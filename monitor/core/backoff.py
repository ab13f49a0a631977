"""Retry delays, with the randomness passed in so tests can fix it.

Two policies:

- `Backoff`: capped exponential backoff with full jitter, for reconnecting sockets and other
  retries of our own. Full jitter (a uniform draw between 0 and the capped exponential) spreads
  the reconnects of many channels that failed together, so they do not hit Genesys in lock-step.
- `retry_delay()`: the official Genesys SDK retry policy for REST calls (GENESYS.md section 6,
  [JAVA-APICLIENT] `Retry`): honour Retry-After on 429, back off in 3/9/27 s steps on 5xx.
"""

from __future__ import annotations

import math
import random

__all__ = [
    "DEFAULT_RETRY_AFTER_S",
    "MAX_RETRY_AFTER_S",
    "RETRYABLE_STATUSES",
    "Backoff",
    "retry_delay",
]


class Backoff:
    """Delays of `base * 2**n` seconds, capped at `cap`, each drawn uniformly from [0, that].

    `next()` returns the delay before the next attempt and counts it; `reset()` starts again from
    `base` (call it once a connection has stayed healthy for a while, not on first success, or a
    flapping peer is retried at full rate).
    """

    __slots__ = ("_attempts", "_ceiling_exponent", "_rng", "base", "cap")

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        if not (math.isfinite(base) and math.isfinite(cap)) or base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng
        self._attempts = 0
        # Past this exponent the cap applies; stopping the exponent there keeps 2**n finite however
        # long the outage lasts.
        self._ceiling_exponent = math.ceil(math.log2(cap / base))

    @property
    def attempts(self) -> int:
        """How many delays have been handed out since the last reset."""
        return self._attempts

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        exponent = min(self._attempts, self._ceiling_exponent)
        return min(self.cap, self.base * 2.0**exponent)

    def next(self) -> float:
        """The delay in seconds before the next attempt."""
        ceiling = self.ceiling()
        self._attempts += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Start again from `base`."""
        self._attempts = 0


RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_AFTER_S = 3.0
# Some APIs answer 429 with a Retry-After of hours when a daily cap is reached; waiting that out
# inside one call is pointless, so the SDK gives up beyond three minutes.
MAX_RETRY_AFTER_S = 180.0
_RETRY_AFTER_RETRIES = 5  # 5xx retries that honour Retry-After before the stepped backoff
_STEP_INTERVAL_S = 300.0  # the 3/9/27 s steps change every five minutes


def retry_delay(
    status: int,
    retry_after: float | None,
    attempt: int,
    elapsed_s: float,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
    *,
    max_attempts: int | None = None,
    max_elapsed_s: float | None = None,
) -> float | None:
    """Seconds to wait before retrying a request, or None to give up.

    `status` is the HTTP status just received; `retry_after` its Retry-After in seconds (None if
    absent); `attempt` the number of the retry being considered (1 for the first); `elapsed_s` the
    time since the first try. Retries 429, 502, 503 and 504 only:

    - 429: wait Retry-After (3 s if absent).
    - 5xx: for the first 5 retries wait Retry-After (3 s if absent); then 3 s while under
      5 minutes have elapsed, 9 s until 10 minutes, 27 s after that.
    - give up when the Retry-After to honour exceeds `max_retry_after_s` (default 3 minutes),
      after `max_attempts` retries, or once `max_elapsed_s` has elapsed (both unbounded if None).
    """
    if status not in RETRYABLE_STATUSES:
        return None
    if max_attempts is not None and attempt > max_attempts:
        return None
    if max_elapsed_s is not None and elapsed_s >= max_elapsed_s:
        return None
    if status == 429 or attempt <= _RETRY_AFTER_RETRIES:
        delay = DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after
        if math.isnan(delay) or delay > max_retry_after_s:
            return None
        return max(0.0, delay)
    if elapsed_s < _STEP_INTERVAL_S:
        return 3.0
    if elapsed_s < 2 * _STEP_INTERVAL_S:
        return 9.0
    return 27.0
