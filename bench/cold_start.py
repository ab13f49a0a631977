"""Cold start: time and REST calls from start to healthy, for 1,000, 10,000 and 20,000 agents.

    .venv/bin/python -m bench.cold_start [--agents 1000 10000 20000] [--quick] [--json PATH]

For each size a fresh simulator (no rate limit: it answers as fast as it can) and a fresh
database; the daemon is started as `python -m monitor run` with users_page_size 500, and the
clock runs from the spawn of its process until /healthz first answers 200 (polled every 10 ms),
so Python's start-up and imports are included. REST calls are counted by the simulator's
request pipeline (Simulator.requests) and compared with the theoretical minimum: the user pages
of the roster, one channel creation and one subscription call per 1,000 agents, and the user
pages of the first snapshot (presence and routing status expanded). The OAuth token request is
listed, but not an API call and not in the minimum.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.dbfill import CACHE
from bench.harness import (
    Check,
    DaemonProcess,
    add_quiet_option,
    daemon_env,
    dump_json,
    free_port,
    metric,
    quiet,
    report_checks,
    set_quiet,
    sim_settings,
)
from monitor.sim.server import Simulator

PAGE = 500
TOPICS_PER_CHANNEL = 1000
TARGET_CALLS = 1.1
TARGET_SECONDS = 10.0
TARGET_SECONDS_AT = 20_000


def route(method: str, path: str) -> str:
    """A readable name for a request of the simulator's log."""
    if path == "/oauth/token":
        return "token"
    if path.startswith("/api/v2/notifications/channels"):
        if path.endswith("/subscriptions"):
            return f"subscriptions ({method})"
        return "channel create" if method == "POST" else f"channel ({method})"
    if path == "/api/v2/users":
        return "users page"
    if path == "/api/v2/users/search":
        return "users search page"
    return f"{method} {path}"


def minimum_calls(agents: int) -> dict[str, int]:
    pages = math.ceil(agents / PAGE)
    channels = math.ceil(agents / TOPICS_PER_CHANNEL)
    return {
        "roster pages": pages,
        "channel creations": channels,
        "subscription calls": channels,
        "snapshot pages": pages,
    }


async def measure(agents: int, work: Path) -> dict[str, Any]:
    async with Simulator.start(sim_settings(agents)) as sim:
        db = work / f"cold-{agents}.db"
        env = daemon_env(sim.api_url, db, free_port(), GENESYS__USERS_PAGE_SIZE=str(PAGE))
        await quiet()
        sim.requests.clear()
        daemon = await DaemonProcess.spawn(work / f"daemon-{agents}", env)
        try:
            seconds = await daemon.healthy(within=300, interval=0.01)
            cpu = daemon.cpu_seconds()
            calls: Counter[str] = Counter()
            for (method, path), n in sim.requests.items():
                calls[route(method, path)] += n
            text = await daemon.metrics()
        finally:
            code = await daemon.stop()
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code}; see {daemon.log}")
    # /healthz itself is the daemon's, not the simulator's, so every request here is the daemon's.
    api = sum(n for name, n in calls.items() if name != "token")
    minimum = minimum_calls(agents)
    return {
        "agents": agents,
        "seconds_to_healthy": seconds,
        "daemon_cpu_s": cpu,
        "calls": dict(calls),
        "api_calls": api,
        "minimum": minimum,
        "minimum_calls": sum(minimum.values()),
        "watched": metric(text, "genesys_agents_watched"),
        "known": metric(text, "genesys_agents"),
    }


def checks(results: list[dict[str, Any]]) -> list[Check]:
    out = []
    for r in results:
        ratio = r["api_calls"] / r["minimum_calls"]
        out.append(
            Check(
                f"{r['agents']:,} agents: API calls / minimum",
                f"{ratio:.2f} ({r['api_calls']} / {r['minimum_calls']})",
                f"<= {TARGET_CALLS}",
                ratio <= TARGET_CALLS,
            )
        )
        out.append(
            Check(
                f"{r['agents']:,} agents: every agent known when healthy",
                f"{r['known']:,.0f} of {r['watched']:,.0f} watched",
                f"all {r['agents']:,}",
                r["known"] == r["watched"] == r["agents"],
            )
        )
        if r["agents"] == TARGET_SECONDS_AT:
            out.append(
                Check(
                    f"{r['agents']:,} agents: start to healthy",
                    f"{r['seconds_to_healthy']:.2f} s",
                    f"<= {TARGET_SECONDS:.0f} s",
                    r["seconds_to_healthy"] <= TARGET_SECONDS,
                )
            )
    return out


async def run(sizes: list[int], work: Path) -> list[dict[str, Any]]:
    results = []
    for agents in sizes:
        r = await measure(agents, work)
        results.append(r)
        calls = ", ".join(f"{name} {n}" for name, n in sorted(r["calls"].items()))
        minimum = ", ".join(f"{name} {n}" for name, n in r["minimum"].items())
        print(
            f"{agents:>6,} agents: healthy {r['seconds_to_healthy']:.2f} s after spawn "
            f"(daemon CPU {r['daemon_cpu_s']:.2f} s); {r['api_calls']} API calls "
            f"(minimum {r['minimum_calls']}: {minimum})\n         requests: {calls}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1_000, 10_000, 20_000])
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 agents only")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    sizes = [1_000, 5_000] if args.quick else args.agents
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="cold-") as folder:
        results = asyncio.run(run(sizes, Path(folder)))
    print()
    found = checks(results)
    ok = report_checks(found)
    dump_json(args.json, {"sizes": results}, found)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
