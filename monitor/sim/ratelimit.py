"""Per-token request budgets: Genesys allows 300 requests a minute on one OAuth token.

Each token has its own budget (each OAuth client has its own tokens, so its own budgets too). The
window slides over simulated time: a request is accepted when fewer than `requests_per_minute`
requests were accepted in the last 60 simulated seconds. A refused request does not count, so
`Retry-After` is exact: the integer seconds until the oldest accepted request leaves the window.
Genesys removed the `inin-ratelimit-*` headers in 2021; only `Retry-After` is sent.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from monitor.httpserver import HttpError

WINDOW_MS = 60_000


def too_many_requests(retry_after_s: int) -> HttpError:
    """The 429 Genesys sends, body and header, as seen on the official forum."""
    return HttpError(
        429,
        f"Rate limit exceeded the maximum. Retry the request in [{retry_after_s}] seconds",
        code="too.many.requests.retry.after",
        headers=[("Retry-After", str(retry_after_s))],
    )


class SimulatedTime(Protocol):
    """All the limiter needs of a clock."""

    def now_ms(self) -> int: ...


class RateLimiter:
    """Sliding one-minute windows of accepted requests, one per token."""

    def __init__(self, requests_per_minute: int, clock: SimulatedTime) -> None:
        self.requests_per_minute = requests_per_minute
        self._clock = clock
        self._accepted: dict[str, deque[int]] = {}

    def admit(self, token: str) -> int | None:
        """Count a request on `token` and return None, or return the seconds to wait (>= 1)."""
        limit = self.requests_per_minute
        if limit <= 0:
            return None
        now = self._clock.now_ms()
        times = self._accepted.setdefault(token, deque())
        while times and times[0] <= now - WINDOW_MS:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return None
        wait_ms = times[0] + WINDOW_MS - now
        return max(1, math.ceil(wait_ms / 1000))

    def check(self, token: str) -> None:
        """`admit`, raising the Genesys 429 when the token is over its budget."""
        retry_after = self.admit(token)
        if retry_after is not None:
            raise too_many_requests(retry_after)

    def used(self, token: str) -> int:
        """Requests accepted on `token` within the current window."""
        now = self._clock.now_ms()
        return sum(1 for t in self._accepted.get(token, ()) if t > now - WINDOW_MS)

    def forget(self, token: str) -> None:
        """Drop a dead token's window (it can never be used again)."""
        self._accepted.pop(token, None)
