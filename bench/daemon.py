"""`python -m bench.daemon`: the daemon, as `monitor run` runs it, on a shared simulated clock.

The benchmarks that accelerate time (memory after a simulated hour, the chaos week) need the
daemon in its own process (for its resident memory, and to kill it with SIGKILL) and on the
simulator's clock (so channel expiry, token refresh and every timestamp agree). Settings come
from the config file and MONITOR_* variables exactly as for `monitor run`; the clock from
`--clock-start-ms`, `--clock-factor` and `--clock-origin` (see bench.harness.ClockAnchor).
Exit codes are those of `monitor run`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import structlog

from bench.harness import ClockAnchor
from monitor import config, logs, service
from monitor.errors import ConfigError, MonitorError

log = structlog.get_logger("bench.daemon")


async def _run(settings: config.Settings, anchor: ClockAnchor) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            os._exit(1)
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)
    async with service.build(settings, clock=anchor.clock()) as daemon:
        await service.run(daemon, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--clock-start-ms", type=int, required=True)
    parser.add_argument("--clock-factor", type=float, required=True)
    parser.add_argument("--clock-origin", type=float, required=True)
    args = parser.parse_args(argv)
    try:
        settings = config.load(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.format)
    anchor = ClockAnchor(args.clock_start_ms, args.clock_factor, args.clock_origin)
    try:
        asyncio.run(_run(settings, anchor))
    except MonitorError as exc:
        log.error("fatal", error=str(exc), kind=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
