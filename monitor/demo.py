"""`monitor demo`: the simulator and the daemon in one process, with a short live summary.

The simulated org starts at 07:30 on the current day, so agents log in within minutes, and time
runs `--time-factor` times faster than real time (a working day in about ten minutes at the
default). The daemon shares the simulator's clock, so every timestamp it records is simulated time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from monitor import config, logs, service
from monitor.clock import ScaledClock
from monitor.core.model import Kind
from monitor.core.timefmt import format_iso_ms
from monitor.errors import MonitorError
from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=300, help="agents in the org (default 300)")
    parser.add_argument(
        "--time-factor",
        type=float,
        default=60.0,
        help="simulated seconds per real second (default 60: an hour a minute)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated org")
    parser.add_argument(
        "--listen",
        default="127.0.0.1:9464",
        help="the monitor's HTTP address (default %(default)s)",
    )
    parser.add_argument(
        "--db", help="database file (default: a new file in a temporary folder)", default=None
    )
    parser.add_argument(
        "--duration", type=float, default=0, help="stop after this many real seconds (0: Ctrl-C)"
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between summaries")


def run(args: argparse.Namespace) -> int:
    if args.agents < 1 or args.time_factor <= 0 or args.duration < 0 or args.every <= 0:
        print("monitor demo: agents, time factor and intervals must be positive", file=sys.stderr)
        return 2
    logs.configure("warning", "console")
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as folder:
        db = args.db or str(Path(folder) / "monitor.db")
        try:
            asyncio.run(_demo(args, db))
        except MonitorError as exc:
            print(f"monitor demo: {exc}", file=sys.stderr)
            return 1
    return 0


def _morning_ms() -> int:
    today = datetime.now(UTC).replace(hour=7, minute=30, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


async def _demo(args: argparse.Namespace, db: str) -> None:
    clock = ScaledClock(_morning_ms(), args.time_factor)
    sim_settings = SimSettings(agents=args.agents, seed=args.seed, time_factor=args.time_factor)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if args.duration:
        loop.call_later(args.duration, stop.set)
    async with Simulator.start(sim_settings, clock=clock, behaviour=True) as sim:
        client = sim_settings.clients[0]
        settings = config.load(
            None,
            env={
                "MONITOR_GENESYS__API_URL": f'"{sim.api_url}"',
                "MONITOR_STORAGE__PATH": f'"{db}"',
                "MONITOR_HTTP__LISTEN": f'"{args.listen}"',
                "MONITOR_ROSTER__REFRESH_S": "300",
                "GENESYS_CLIENT_ID": client.client_id,
                "GENESYS_CLIENT_SECRET": client.client_secret,
            },
        )
        async with service.build(settings, clock=clock, seed=args.seed) as daemon:

            def ready() -> None:
                web = f"http://{settings.http.host}:{daemon.web_port}"
                print(
                    f"Simulated Genesys Cloud org: {args.agents} agents, time x{args.time_factor:g}\n"
                    f"  simulator API:   {sim.api_url}  (admin: {sim.api_url}/sim/status)\n"
                    f"  monitor metrics: {web}/metrics\n"
                    f"  monitor health:  {web}/healthz\n"
                    f"  database:        {db}\n"
                    "Press Ctrl-C to stop.",
                    flush=True,
                )

            summary = asyncio.create_task(_summaries(daemon, args.every), name="demo-summary")
            try:
                await service.run(daemon, stop, on_ready=ready)
            finally:
                summary.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await summary
            print(_summary(daemon), flush=True)
            print("stopped", flush=True)


async def _summaries(daemon: service.Daemon, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(_summary(daemon), flush=True)


def _summary(daemon: service.Daemon) -> str:
    routing: Counter[str] = Counter()
    presence: Counter[str] = Counter()
    for (_agent, kind), state in daemon.tracker.states():
        (presence if kind is Kind.PRESENCE else routing)[state.value] += 1
    up = sum(1 for slot in daemon.pool.slots.values() if slot.up)
    recorded = sum(
        sample.value
        for metric in daemon.metrics.transitions.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
    when = format_iso_ms(daemon.clock.now_ms())[:16].replace("T", " ")
    top = ", ".join(f"{k.lower()} {v}" for k, v in presence.most_common(4))
    return (
        f"[{when} sim] channels {up}/{len(daemon.pool.slots)} up | transitions {int(recorded)}"
        f" | on queue: {routing.get('IDLE', 0)} idle, {routing.get('INTERACTING', 0)} interacting,"
        f" {routing.get('NOT_RESPONDING', 0)} not responding | {top}"
    )
