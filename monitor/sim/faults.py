"""Fault-injection state of the simulator, and the record of every fault injected.

The REST layer and the streaming layer read this state on every request and every frame; the
`Simulator` facade and the admin API change it. Faults that are actions rather than states
(drop a socket, send `socket_closing`, expire a channel, revoke tokens) are methods of the
`Simulator`, which records them here too, so a chaos report can list every fault.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FaultRecord:
    at_ms: int
    name: str
    args: dict[str, Any]


@dataclass(slots=True)
class Faults:
    rng: random.Random
    # REST: every request until this (simulated) time gets a 429 with this Retry-After.
    rate_limit_storm_until_ms: int = 0
    storm_retry_after_s: int = 5
    # REST: the next N requests get this 5xx status.
    server_errors_remaining: int = 0
    server_error_status: int = 503
    # Streaming: no heartbeats (and no pongs) while set.
    heartbeats_stopped: bool = False
    # Streaming: every frame waits this long (simulated seconds) before it is sent.
    frame_delay_s: float = 0.0
    # Streaming: share of event frames sent twice / held back and sent after the next one /
    # replaced by a malformed frame (followed by the real one, so nothing is lost by the fault).
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    malformed_rate: float = 0.0
    log: list[FaultRecord] = field(default_factory=list)

    def record(self, at_ms: int, name: str, **args: Any) -> None:
        self.log.append(FaultRecord(at_ms, name, args))

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate
