"""`monitor sim`: run the simulator in the foreground until SIGINT or SIGTERM.

It prints where to reach it (the API URL, which is also the login URL, and the websocket port) and
the OAuth client credentials to use, so that a daemon or the official SDK can be pointed at it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, default=100, help="agents in the org (default 100)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="REST port (default: any free port)")
    parser.add_argument(
        "--ws-port", type=int, default=0, help="websocket port (default: any free port)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the org (default 1)")
    parser.add_argument(
        "--time-factor",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1)",
    )
    parser.add_argument(
        "--behaviour",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let agents work shifts (default on)",
    )


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 after a signal, 1 when the simulator cannot start, 2 for bad arguments."""
    try:
        settings = SimSettings(agents=args.agents, seed=args.seed, time_factor=args.time_factor)
    except ValueError as exc:
        print(f"monitor sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings, args))
    except OSError as exc:
        print(f"monitor sim: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: SimSettings, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Simulator.start(
            settings,
            host=args.host,
            port=args.port,
            ws_port=args.ws_port,
            behaviour=args.behaviour,
        ) as sim:
            client = settings.clients[0]
            lines = [
                f"Genesys Cloud simulator: {settings.agents} agents, seed {settings.seed}, "
                f"time x{settings.time_factor:g}, behaviour {'on' if args.behaviour else 'off'}",
                f"api url:        {sim.api_url}  (also the login url: {sim.api_url}/oauth/token)",
                f"websocket port: {sim.ws_port}",
                f"client id:      {client.client_id}",
                f"client secret:  {client.client_secret}",
                f"admin api:      {sim.api_url}/sim/status",
            ]
            print("\n".join(lines), flush=True)
            await stop.wait()
            print("stopping", flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
