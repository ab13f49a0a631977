"""Command line: argv -> one command -> exit code (0 ok, 1 runtime failure, 2 usage/config error)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from monitor import __version__, config, logs
from monitor.errors import CapacityError, ConfigError, MonitorError
from monitor.store import Store
from monitor.store.rows import EXPORT_COLUMNS, ExportRow

log = structlog.get_logger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help(sys.stderr)
        return 2
    try:
        result: int = args.command(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", description="Real-time presence and routing monitor for Genesys Cloud."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(command=handler)
        return sub

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            default=os.environ.get("MONITOR_CONFIG", "config.toml"),
            help="settings file (default: $MONITOR_CONFIG or ./config.toml)",
        )

    with_config(command("run", _run, "Run the daemon until SIGTERM or SIGINT."))
    with_config(command("check-config", _check_config, "Validate the settings and print them."))
    with_config(command("migrate", _migrate, "Create or upgrade the database, then exit."))
    backup = command("backup", _backup, "Write a consistent copy of the database to PATH.")
    with_config(backup)
    backup.add_argument("path", help="file to create (must not exist)")

    export = command("export", _export, "Write recorded transitions as CSV or JSON lines.")
    with_config(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--since", type=_instant, help="event time from (ISO date or time, UTC)")
    export.add_argument("--until", type=_instant, help="event time before (ISO date or time, UTC)")
    export.add_argument("--agent", help="only this agent id")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")

    from monitor.sim import cli as sim_cli  # noqa: PLC0415 - the simulator is loaded on demand

    sim_cli.add_arguments(command("sim", sim_cli.run, "Run the Genesys Cloud simulator."))

    from monitor import demo, presence_cli, reporting  # noqa: PLC0415

    demo.add_arguments(command("demo", demo.run, "Run the simulator and the monitor together."))
    presence_cli.add_presence_commands(commands, with_config, _instant)
    reporting.add_report_commands(commands)
    return parser


def _instant(text: str) -> int:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- commands ------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    logs.configure(settings.log.level, settings.log.format)
    from monitor import service  # noqa: PLC0415 - keeps `monitor check-config` light

    _tune_interpreter()

    async def daemon() -> None:
        stop = asyncio.Event()
        with _signals(stop):
            async with service.build(settings) as d:
                await service.run(d, stop)

    return guarded(daemon)


def _tune_interpreter() -> None:
    """Interpreter settings for the daemon's process, measured with bench.ingest (20,000 agents,
    two million stored transitions).

    The daemon keeps a large, long-lived heap (the tracker, the metrics' series, the roster)
    and makes short-lived objects for every frame; at the default thresholds the collector ran
    every 700 allocations and its older generations walked that heap again and again. Those
    objects are freed by reference counting as soon as they are done with; the collector only
    looks for reference cycles, so running it less often costs little memory.
    """
    gc.set_threshold(50_000, 20, 100)


def _check_config(args: argparse.Namespace) -> int:
    settings = config.load(args.config)
    print(json.dumps(config.redacted(settings), indent=2))
    return 0


def _with_store(
    args: argparse.Namespace, work: Callable[[Store], Awaitable[None]], *, create: bool = False
) -> int:
    """Run `work` on the configured database: the commands that need no Genesys credentials.
    A database that does not exist is an error (exit 2) unless the command creates it."""
    settings = config.load(args.config, require_credentials=False)
    logs.configure(settings.log.level, settings.log.format)
    path = settings.storage.path
    if not create and not Path(path).exists():
        print(f"monitor: no database at {path} (check storage.path)", file=sys.stderr)
        return 2

    async def main() -> None:
        async with await Store.open(path) as store:
            await work(store)

    return guarded(main)


def _migrate(args: argparse.Namespace) -> int:
    async def migrate(store: Store) -> None:
        print(f"{store.path}: schema version {await store.version()}")

    return _with_store(args, migrate, create=True)


def _backup(args: argparse.Namespace) -> int:
    async def backup(store: Store) -> None:
        await store.backup(args.path)
        print(f"backup written to {args.path}")

    return _with_store(args, backup)


def _export(args: argparse.Namespace) -> int:
    async def export(store: Store) -> None:
        with _output(args.output) as out:
            await _write_rows(store.export(args.since, args.until, args.agent), args.format, out)

    return _with_store(args, export)


async def _write_rows(rows: AsyncIterator[ExportRow], fmt: str, out: IO[str]) -> None:
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        async for row in rows:
            writer.writerow(row)
    else:
        async for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")


# --- helpers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with Path(path).open("w", newline="", encoding="utf-8") as out:
        yield out


def guarded(main: Callable[[], Any]) -> int:
    """Run an async command; a MonitorError becomes one clear line and exit code 1."""
    try:
        asyncio.run(main())
    except CapacityError as exc:
        log.error("capacity_exceeded", error=str(exc), clients_needed=exc.clients_needed)
        return 1
    except ConfigError:
        raise
    except MonitorError as exc:
        log.error("fatal", error=str(exc), kind=type(exc).__name__)
        return 1
    return 0


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`; a second one ends the process at once."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("signal", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
