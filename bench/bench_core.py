"""Microbenchmarks of the core's hot paths: frame decoding and tracker updates.

Run from the project root: `.venv/bin/python -m bench.bench_core [--repeat N]`. Prints the best
of several runs in microseconds per operation. Numbers are for comparing changes on one machine;
no test asserts them.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from zoneinfo import ZoneInfo

from monitor.core.cron import next_fire, parse
from monitor.core.model import Kind, Source, Update
from monitor.core.topics import Limits, plan
from monitor.core.tracker import Tracker
from monitor.core.wire import decode

AGENT = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
PRESENCE = (
    f'{{"topicName":"v2.users.{AGENT}.presence","version":"2",'
    '"eventBody":{"source":"PURECLOUD",'
    '"presenceDefinition":{"id":"6a3af858-942f-489d-9700-5f9bcdcdae9b","systemPresence":"ON_QUEUE"},'
    '"primary":true,"message":"","modifiedDate":"2024-05-14T09:03:17.067Z"},'
    '"metadata":{"CorrelationId":"290034f4-c3d7-46fd-8342-ee5bc859b7e9"}}'
)
ROUTING = (
    f'{{"topicName":"v2.users.{AGENT}.routingStatus","version":"2",'
    f'"eventBody":{{"id":"{AGENT}",'
    '"routingStatus":{"status":"IDLE","startTime":"2024-05-14T09:03:17.067Z"}},'
    '"metadata":{"CorrelationId":"9e8067c7-1111-4222-8333-444455556666"}}'
)
HEARTBEAT = '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}'
T0 = 1_715_677_397_067


def best_us(operation: Callable[[], object], number: int, repeat: int) -> float:
    """Best-of-`repeat` microseconds per call of `operation`."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            operation()
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def tracker_cases(number: int, repeat: int) -> dict[str, Callable[[], object]]:
    agents = [str(uuid.UUID(int=i)) for i in range(1000)]
    values = ["IDLE", "INTERACTING"]
    # Built in advance, with ever later times, so that every call is a real transition.
    transitions = [
        Update(agents[i % 1000], Kind.ROUTING, values[(i // 1000) % 2], T0 + i)
        for i in range(number * repeat)
    ]
    changing = Tracker()
    feed = iter(transitions)

    def transition() -> object:
        return changing.apply(next(feed), T0, Source.LIVE)

    settled = Tracker()
    same = Update(agents[0], Kind.ROUTING, "IDLE", T0)
    old = Update(agents[0], Kind.ROUTING, "IDLE", T0 - 1)
    settled.apply(same, T0, Source.LIVE)
    return {
        "Tracker.apply (transition)": transition,
        "Tracker.apply (duplicate)": lambda: settled.apply(same, T0, Source.LIVE),
        "Tracker.apply (stale)": lambda: settled.apply(old, T0, Source.LIVE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    number, repeat = args.number, args.repeat
    berlin = ZoneInfo("Europe/Berlin")
    spec = parse("30 2 * * MON-FRI")
    roster = [str(uuid.UUID(int=i)) for i in range(20_000)]
    limits = Limits(clients=1)
    planned = plan({}, roster, limits)
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "decode presence frame": (lambda: decode(PRESENCE, T0), number),
        "decode routing frame": (lambda: decode(ROUTING, T0), number),
        "decode heartbeat": (lambda: decode(HEARTBEAT, T0), number),
        **{name: (op, number) for name, op in tracker_cases(number, repeat).items()},
        "cron next_fire (daily)": (lambda: next_fire(spec, T0, berlin), number // 10),
        "plan 20,000 agents from nothing": (lambda: plan({}, roster, limits), 3),
        "plan 20,000 agents, unchanged": (lambda: plan(planned, roster, limits), 3),
    }
    width = max(map(len, cases))
    for name, (operation, count) in cases.items():
        print(f"{name:<{width}}  {best_us(operation, count, repeat):>12.2f} us")


if __name__ == "__main__":
    main()
