"""Clocks for the shell: the system clock, and a scaled clock for simulated time.

The core never reads a clock; the shell reads one of these and passes times in. The simulator and,
in the demo and in tests, the daemon share one `ScaledClock`, so that a working day can pass in
minutes while every timestamp, deadline and sleep stays consistent on both sides.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    """Wall time, elapsed time and waiting, all in the same (possibly scaled) time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """An `asyncio.timeout` of `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)


class ScaledClock:
    """Simulated time: starts at `start_ms` and runs `factor` times faster than real time."""

    def __init__(self, start_ms: int | None = None, factor: float = 1.0) -> None:
        if factor <= 0:
            raise ValueError("the time factor must be positive")
        self.factor = factor
        self._start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._mono0 = time.monotonic()

    def now_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._mono0) * self.factor * 1000)

    def monotonic(self) -> float:
        return (time.monotonic() - self._mono0) * self.factor

    def real_seconds(self, seconds: float) -> float:
        """How long `seconds` of simulated time takes in real time."""
        return max(0.0, seconds) / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(seconds))

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(None if seconds is None else self.real_seconds(seconds))
