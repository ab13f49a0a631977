"""`monitor report`: time in status and one agent's day, as an aligned table, CSV or JSON.

    monitor report status-time --from 2026-03-01 --to 2026-03-31 [--by agent,day] [--format csv]
    monitor report agent AGENT --day 2026-03-03 [--format json]

Dates are local calendar days in `--tz` (default: the config's actions.timezone), both ends
included. `--db PATH` reads that database file directly, without a config file (for a backup,
say); the time zone then defaults to UTC. The output formats are in report_format.py; the JSON
shapes are the ones the HTTP API serves.

Exit codes as for every command: 0 done, 1 the database could not be read, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from monitor import logs
from monitor.clock import SystemClock
from monitor.core.statustime import day_start_ms
from monitor.errors import MonitorError
from monitor.report_format import FORMATS, write_status_time, write_timeline
from monitor.store import Store
from monitor.store.agent_day import UnknownAgent, agent_timeline, find_agent
from monitor.store.report_reads import time_zone
from monitor.store.reports import GROUPS, check_by, status_time


class _Commands(Protocol):
    """What argparse's add_subparsers() returns (its class is private)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


# --- command line ---------------------------------------------------------------------------------


class UsageError(Exception):
    """A bad argument found after parsing (exit 2)."""


def add_report_commands(commands: _Commands) -> None:
    """Add `report status-time` and `report agent` to the monitor's subcommands."""
    report = commands.add_parser(
        "report",
        help="Time in status, or one agent's day.",
        description="Time in status, or one agent's day, as an aligned table, CSV or JSON.",
    )
    kinds = report.add_subparsers(title="reports", metavar="REPORT")
    report.set_defaults(command=lambda _args: _help(report))

    status = kinds.add_parser(
        "status-time",
        help="Time in each presence and routing status, per agent, division, queue or day.",
        description="Time in each presence and routing status, with the transitions into each "
        "and the longest stretch; time inside recorded gaps is shown apart as uncertain.",
    )
    _common(status)
    status.add_argument(
        "--from", dest="first", metavar="DATE", type=_date, required=True, help="first day"
    )
    status.add_argument(
        "--to", dest="last", metavar="DATE", type=_date, required=True, help="last day, included"
    )
    status.add_argument(
        "--by",
        default="agent",
        help=f"group by one or more of {', '.join(GROUPS)}, comma-separated (default: agent)",
    )
    status.set_defaults(command=run_status_time)

    agent = kinds.add_parser(
        "agent",
        help="One agent's day: presence and routing intervals, actions and gaps.",
        description="One agent's local day as a timeline of presence and routing status, with "
        "the actions taken on them and the gaps in what was recorded.",
    )
    _common(agent)
    agent.add_argument("agent", help="agent id, email or name")
    agent.add_argument("--day", metavar="DATE", type=_date, required=True, help="the day")
    agent.set_defaults(command=run_agent)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("MONITOR_CONFIG", "config.toml"),
        help="settings file (default: $MONITOR_CONFIG or ./config.toml)",
    )
    parser.add_argument("--db", help="read this database file instead of the configured one")
    parser.add_argument("--tz", help="time zone of the days (default: actions.timezone, or UTC)")
    parser.add_argument("--format", choices=FORMATS, default="table")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _database(args: argparse.Namespace) -> tuple[str, str]:
    """The database path and time zone name to use; ConfigError from a bad config.

    Logs go to stderr (warnings and worse), so that CSV or JSON on stdout stays clean.
    """
    if args.db:
        logs.configure("warning")
        return args.db, args.tz or "UTC"
    from monitor import config  # noqa: PLC0415 - the config module only when it is used

    # Reports never talk to Genesys: no OAuth credentials needed.
    settings = config.load(args.config, require_credentials=False)
    logs.configure("warning", settings.log.format)
    return settings.storage.path, args.tz or settings.actions.timezone


def _open(path: str) -> Awaitable[Store]:
    """The store at `path`; a report never creates an empty database where none is."""
    if not Path(path).is_file():
        raise UsageError(f"no database at {path}")
    return Store.open(path)


def run_status_time(args: argparse.Namespace) -> int:
    path, tz = _database(args)

    async def report() -> None:
        try:
            time_zone(tz)
            by = check_by(args.by.split(","))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.last < args.first:
            raise UsageError(f"--to ({args.last}) is before --from ({args.first})")
        async with await _open(path) as store:
            try:
                found = await status_time(
                    store, args.first, args.last, tz, SystemClock().now_ms(), by
                )
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        write_status_time(found, args.format, sys.stdout)

    return _guarded(report)


def run_agent(args: argparse.Namespace) -> int:
    path, tz = _database(args)

    async def report() -> None:
        try:
            zone = time_zone(tz)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        start = day_start_ms(args.day, zone)
        end = day_start_ms(args.day + timedelta(days=1), zone)
        async with await _open(path) as store:
            try:
                agent = await find_agent(store, args.agent)
                found = await agent_timeline(store, agent.id, start, end, SystemClock().now_ms())
            except UnknownAgent as exc:
                raise UsageError(str(exc.args[0])) from None
        write_timeline(found, args.format, sys.stdout, tz)

    return _guarded(report)


def _guarded(main: Callable[[], Any]) -> int:
    try:
        asyncio.run(main())
    except UsageError as exc:
        print(f"monitor report: error: {exc}", file=sys.stderr)
        return 2
    except MonitorError as exc:
        print(f"monitor report: {exc}", file=sys.stderr)
        return 1
    return 0
