"""Helpers shared by the tests: one timeout factor, and one way to wait for a condition.

Tests never sleep to let something happen; they await a readiness signal or poll a condition with
a deadline through `eventually`. Every deadline is multiplied by TEST_TIMEOUT_FACTOR (environment),
so a slow CI machine can be given more time without touching a test.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

TIMEOUT_FACTOR = float(os.environ.get("TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    """A test deadline, scaled for the machine."""
    return seconds * TIMEOUT_FACTOR


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    within: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    *,
    within: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    *,
    within: float = 5.0,
    interval: float = 0.01,
    message: str = "condition",
) -> Any:
    """Poll `probe` until it returns something truthy; return that. Fails after `within` seconds."""
    deadline = time.monotonic() + scaled(within)
    last: Any = None
    while True:
        result = probe()
        if isinstance(result, Awaitable):
            result = await result
        last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{message} not reached within {scaled(within):.1f}s (last: {last!r})"
            )
        await asyncio.sleep(interval)
