"""`/metrics` scrape time with per-agent series at 20,000 agents.

    .venv/bin/python -m bench.scrape [--agents 20000] [--scrapes 40] [--load 2000] [--quick]

The daemon (`python -m monitor run`, per-agent series on, the default) watches a simulated org;
once healthy every agent has a presence and a routing status, so every per-agent series exists.
Scrapes are timed as Prometheus sees them, by a client in a process of its own: from sending
GET /metrics on a kept-alive connection to the last byte of the body. Two series of scrapes: the daemon idle, then while the firehose
streams `--load` events a second to it (a busy centre's traffic at this size is a few hundred a
second; the default is ten times that). The daemon's CPU per scrape comes from the idle series.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench.dbfill import CACHE
from bench.harness import (
    DAEMON_CLIENT,
    Check,
    DaemonProcess,
    add_quiet_option,
    daemon_env,
    dump_json,
    free_port,
    metric,
    percentile,
    quiet,
    report_checks,
    set_quiet,
    sim_settings,
)
from monitor.sim.firehose import Firehose
from monitor.sim.server import Simulator

TARGET_MS = 250.0


def scraper(url: str, count: int, pause: float, conn: Connection) -> None:
    """Prometheus's part, in a process of its own so the simulator's work does not delay it:
    `count` timed scrapes on one kept-alive connection, sent back on `conn`."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        http.get("/metrics").raise_for_status()  # the connection is open before timing starts
        for _ in range(count):
            started = time.perf_counter()
            response = http.get("/metrics")
            body = response.content
            seconds = time.perf_counter() - started
            response.raise_for_status()
            out.append({"ms": seconds * 1000, "bytes": float(len(body))})
            time.sleep(pause)
    conn.send(out)


async def scrapes(url: str, count: int, pause: float) -> list[dict[str, float]]:
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=scraper, args=(url, count, pause, there), daemon=True)
    process.start()
    try:
        loop = asyncio.get_running_loop()
        result: list[dict[str, float]] = await asyncio.wait_for(
            loop.run_in_executor(None, here.recv), 600
        )
    finally:
        process.join(10)
    return result


def summary(series: list[dict[str, float]]) -> dict[str, float]:
    ms = sorted(s["ms"] for s in series)
    return {
        "scrapes": len(ms),
        "median_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "max_ms": ms[-1],
        "bytes": series[-1]["bytes"],
    }


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    async with Simulator.start(sim_settings(args.agents, custom_definitions=False)) as sim:
        firehose = Firehose(sim.org, sim.notifications, sim.clock)
        firehose.put_on_queue()
        env = daemon_env(
            sim.api_url, work / "monitor.db", free_port(), GENESYS__USERS_PAGE_SIZE="500"
        )
        daemon = await DaemonProcess.spawn(work, env)
        try:
            await daemon.healthy(within=300)
            await daemon.settled()
            await daemon.idle()
            text = await daemon.metrics()
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            known = metric(text, "genesys_agent_presence") + metric(
                text, "genesys_agent_routing_status"
            )
            await quiet()
            cpu = daemon.cpu_seconds()
            idle = await scrapes(daemon.url, args.scrapes, 0.1)
            # One more scrape than timed: the connection is opened with an untimed one.
            cpu_per_scrape = (daemon.cpu_seconds() - cpu) / (args.scrapes + 1)
            stream = asyncio.create_task(firehose.stream(args.load, 3600, DAEMON_CLIENT.client_id))
            await quiet()  # the stream itself is this process's own work
            await asyncio.sleep(2)  # the stream is flowing before timing starts
            busy = await scrapes(daemon.url, args.scrapes, 0.1)
            stream.cancel()
        finally:
            code = await daemon.stop()
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code}; see {daemon.log}")
    return {
        "agents": args.agents,
        "series": series,
        "per_agent_state_series": known,
        "idle": summary(idle),
        "under_load": summary(busy),
        "load_events_per_s": args.load,
        "daemon_cpu_ms_per_scrape": cpu_per_scrape * 1000,
    }


def checks(r: dict[str, Any]) -> list[Check]:
    worst = max(r["idle"]["max_ms"], r["under_load"]["max_ms"])
    return [
        Check(
            f"{r['agents']:,} agents: slowest scrape",
            f"{worst:.0f} ms (median idle {r['idle']['median_ms']:.0f} ms, "
            f"under load {r['under_load']['median_ms']:.0f} ms)",
            f"< {TARGET_MS:.0f} ms",
            worst < TARGET_MS,
        ),
        Check(
            "per-agent series present",
            f"{r['per_agent_state_series']:,.0f} presence and routing series",
            f"{2 * r['agents']:,}",
            r["per_agent_state_series"] == 2 * r["agents"],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument("--load", type=float, default=2_000, help="events a second while busy")
    parser.add_argument("--quick", action="store_true", help="5,000 agents, 10 scrapes")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    if args.quick:
        args.agents, args.scrapes = 5_000, 10
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="scrape-") as folder:
        result = asyncio.run(run(args, Path(folder)))
    for name in ("idle", "under_load"):
        s = result[name]
        print(
            f"{name:>10}: {s['scrapes']} scrapes of {s['bytes'] / 1e6:.1f} MB: median "
            f"{s['median_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, max {s['max_ms']:.0f} ms"
        )
    print(
        f"{result['series']:,} series; daemon CPU per scrape {result['daemon_cpu_ms_per_scrape']:.0f}"
        f" ms; load while busy {result['load_events_per_s']:,.0f} events/s\n"
    )
    found = checks(result)
    ok = report_checks(found)
    dump_json(args.json, result, found)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
