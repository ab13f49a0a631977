"""Resident memory of the daemon at 1,000, 10,000 and 20,000 agents after a simulated hour.

    .venv/bin/python -m bench.memory [--agents 1000 10000 20000] [--factor 30] [--quick]

For each size, a simulated org with the behaviour model on (agents work their shifts) starts at
10:00 on a weekday in the org's zone, when most agents are on shift, and time runs `--factor`
times faster than real time. The daemon runs in its own process (`python -m bench.daemon`, the
same daemon as `monitor run` on the simulator's clock) on a fresh database, and its resident
memory (VmRSS in /proc/PID/status) is sampled every simulated five minutes until a simulated hour
has passed since it became healthy. Linear growth is checked by comparing the middle size with
the straight line through the smallest and the largest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.dbfill import CACHE
from bench.harness import (
    Check,
    ClockAnchor,
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

TARGET_MIB = 150.0
TARGET_AT = 20_000
LINEAR_TOLERANCE = 0.15
HOUR_S = 3600.0


def busy_morning_ms() -> int:
    """10:00 UTC on the most recent Wednesday before today: a working day, mid-morning."""
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    back = (today.weekday() - 2) % 7 or 7
    return int((today - timedelta(days=back)).timestamp() * 1000)


async def measure(agents: int, factor: float, work: Path) -> dict[str, Any]:
    await quiet()
    start_ms = busy_morning_ms()
    anchor = ClockAnchor.now(start_ms, factor)
    clock = anchor.clock()
    settings = sim_settings(agents, start_ms=start_ms, time_factor=factor)
    async with Simulator.start(settings, clock=clock, behaviour=True) as sim:
        env = daemon_env(
            sim.api_url,
            work / f"memory-{agents}.db",
            free_port(),
            GENESYS__USERS_PAGE_SIZE="500",
            # Simulated seconds: an hour is a minute or two of real time here, so intervals that
            # real time bounds (a socket open, a silent channel) are scaled up with it.
            CHANNELS__OPEN_TIMEOUT_S=str(10 * factor),
            CHANNELS__PING_AFTER_S=str(max(45.0, 2 * factor)),
            CHANNELS__PONG_TIMEOUT_S=str(max(15.0, factor)),
            ROSTER__REFRESH_S="600",
        )
        daemon = await DaemonProcess.spawn(work / f"daemon-{agents}", env, anchor=anchor)
        samples: list[tuple[float, int]] = []
        try:
            await daemon.healthy(within=300)
            healthy_ms = clock.now_ms()
            samples.append((0.0, daemon.rss_kib()))
            while True:
                elapsed = (clock.now_ms() - healthy_ms) / 1000
                if elapsed >= HOUR_S:
                    break
                await clock.sleep(min(300.0, HOUR_S - elapsed))
                if not daemon.running:
                    raise RuntimeError(f"the daemon exited; see {daemon.log}")
                samples.append(((clock.now_ms() - healthy_ms) / 1000, daemon.rss_kib()))
            text = await daemon.metrics()
            cpu = daemon.cpu_seconds()
        finally:
            code = await daemon.stop()
        changes = len(sim.org.truth)
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code}; see {daemon.log}")
    return {
        "agents": agents,
        "rss_mib": samples[-1][1] / 1024,
        "rss_start_mib": samples[0][1] / 1024,
        "peak_mib": max(s[1] for s in samples) / 1024,
        "samples": [(round(t), round(kib / 1024, 1)) for t, kib in samples],
        "transitions": metric(text, "genesys_transitions_total"),
        "org_changes": changes,
        "daemon_cpu_s": cpu,
    }


def checks(results: list[dict[str, Any]]) -> list[Check]:
    out = []
    for r in results:
        if r["agents"] == TARGET_AT:
            out.append(
                Check(
                    f"{r['agents']:,} agents: resident memory after a simulated hour",
                    f"{r['rss_mib']:.0f} MiB",
                    f"< {TARGET_MIB:.0f} MiB",
                    r["rss_mib"] < TARGET_MIB,
                )
            )
    if len(results) >= 3:
        ordered = sorted(results, key=lambda r: r["agents"])
        low, high = ordered[0], ordered[-1]
        slope = (high["rss_mib"] - low["rss_mib"]) / (high["agents"] - low["agents"])
        for middle in ordered[1:-1]:
            line = low["rss_mib"] + slope * (middle["agents"] - low["agents"])
            off = (middle["rss_mib"] - line) / line
            out.append(
                Check(
                    f"{middle['agents']:,} agents on the line through "
                    f"{low['agents']:,} and {high['agents']:,}",
                    f"{middle['rss_mib']:.0f} MiB against {line:.0f} MiB ({off:+.0%}); "
                    f"{slope * 1024 * 1000:.0f} KiB per 1,000 agents",
                    f"within {LINEAR_TOLERANCE:.0%}",
                    abs(off) <= LINEAR_TOLERANCE,
                )
            )
    return out


async def run(sizes: list[int], factor: float, work: Path) -> list[dict[str, Any]]:
    results = []
    for agents in sizes:
        r = await measure(agents, factor, work)
        results.append(r)
        trace = ", ".join(f"{t // 60:.0f}m {mib:.0f}" for t, mib in r["samples"])
        print(
            f"{agents:>6,} agents: {r['rss_mib']:.0f} MiB after a simulated hour (at healthy "
            f"{r['rss_start_mib']:.0f} MiB, peak {r['peak_mib']:.0f} MiB); "
            f"{r['transitions']:,.0f} transitions recorded, daemon CPU {r['daemon_cpu_s']:.0f} s\n"
            f"         MiB by simulated minute: {trace}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1_000, 10_000, 20_000])
    parser.add_argument("--factor", type=float, default=30.0, help="simulated seconds a second")
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 agents, x120")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    sizes, factor = ([1_000, 5_000], 120.0) if args.quick else (args.agents, args.factor)
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="memory-") as folder:
        results = asyncio.run(run(sizes, factor, Path(folder)))
    print()
    found = checks(results)
    ok = report_checks(found)
    dump_json(args.json, {"factor": factor, "sizes": results}, found)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
