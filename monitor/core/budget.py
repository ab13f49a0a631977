"""Request budgets: how long a caller must wait before its next request, as pure arithmetic.

Genesys allows 300 requests a minute per OAuth token, and after a 429 the token must not be used
again before Retry-After has passed. A `RateBudget` is a sliding window over the last minute: a
burst of up to the whole minute's allowance goes out at once (a cold start needs that), and no
60-second window ever holds more. The shell reserves a slot, sleeps the returned delay, then
sends; reserving rather than polling keeps waiting callers in order without a lock.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class RateBudget:
    """At most `per_minute` sends in any 60-second window. Times in seconds."""

    def __init__(self, per_minute: int) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.per_minute = per_minute
        self._sends: deque[float] = deque()  # reserved send times, ascending
        self._paused_until = float("-inf")

    def reserve(self, now: float) -> float:
        """Reserve the earliest allowed send time; returns the seconds to wait (0 = now)."""
        while self._sends and self._sends[0] <= now - WINDOW_S:
            self._sends.popleft()
        at = max(now, self._paused_until)
        if len(self._sends) >= self.per_minute:
            # The slot frees when the send `per_minute` places back leaves the window.
            at = max(at, self._sends[-self.per_minute] + WINDOW_S)
        if self._sends and at < self._sends[-1]:
            at = self._sends[-1]  # keep reservations in order
        self._sends.append(at)
        return at - now

    def pause_until(self, until: float) -> None:
        """Nobody sends before `until` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, until)

    def used(self, now: float) -> int:
        """Sends in the window ending at `now` (reservations already due included)."""
        return sum(1 for t in self._sends if now - WINDOW_S < t <= now)
