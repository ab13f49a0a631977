"""`monitor presence set` (asks the running daemon, which owns the request budget and the audit
trail) and `monitor audit` (reads the audit trail from the database)."""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from monitor import config
from monitor.cli import guarded
from monitor.core.timefmt import format_iso_ms
from monitor.presence_api import PATH


def add_presence_commands(commands: Any, with_config: Any, instant: Any) -> None:
    presence = commands.add_parser(
        "presence", help="Change agents' presence.", description="Change agents' presence."
    )
    sub = presence.add_subparsers(title="presence commands", metavar="COMMAND")
    change = sub.add_parser(
        "set",
        help="Set the presence of the selected agents (through the running daemon).",
        description=(
            "Set the presence of the selected agents. Selectors combine: every given kind must "
            "match (AND); several values of one kind are alternatives (OR). Agents handling an "
            "interaction are skipped unless --force."
        ),
    )
    with_config(change)
    change.set_defaults(command=_set)
    change.add_argument("--to", required=True, help="target presence, e.g. Offline, 'On Queue'")
    change.add_argument("--agent", action="append", default=[], help="agent id (repeatable)")
    change.add_argument("--email", action="append", default=[], help="agent email (repeatable)")
    change.add_argument("--division", action="append", default=[], help="division name or id")
    change.add_argument("--queue", action="append", default=[], help="queue name or id")
    change.add_argument("--presence", action="append", default=[], help="current presence")
    change.add_argument("--routing-status", action="append", default=[], help="current routing")
    change.add_argument("--in-status-for", help="in the current status at least this long (10h)")
    change.add_argument("--in-status-kind", choices=("presence", "routing"))
    change.add_argument("--all", action="store_true", help="select every agent (no selector)")
    change.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    change.add_argument(
        "--force", action="store_true", help="also change agents who are interacting"
    )
    change.add_argument("--max-agents", type=int, help="raise the cap on agents for this request")
    change.add_argument("--url", help="the daemon's address (default: http.listen of the config)")
    change.add_argument("--json", action="store_true", help="print the daemon's JSON answer")

    audit = commands.add_parser(
        "audit", help="List audited presence changes.", description="List the audit trail."
    )
    with_config(audit)
    audit.set_defaults(command=_audit)
    audit.add_argument("--since", type=instant, help="from (ISO date or time, UTC)")
    audit.add_argument("--until", type=instant, help="before (ISO date or time, UTC)")
    audit.add_argument("--agent", help="only this agent id")
    audit.add_argument("--actor", help="only this actor, e.g. schedule:end-of-day")
    audit.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    select: dict[str, Any] = {}
    for key, values in (
        ("agents", args.agent),
        ("emails", args.email),
        ("divisions", args.division),
        ("queues", args.queue),
        ("presence", args.presence),
        ("routing_status", args.routing_status),
    ):
        if values:
            select[key] = values
    if args.in_status_for:
        select["in_status_for"] = args.in_status_for
    if args.in_status_kind:
        select["in_status_kind"] = args.in_status_kind
    return select


def _set(args: argparse.Namespace) -> int:
    settings = config.load(args.config, require_credentials=False)
    select = _selection(args)
    if not select and not args.all:
        print("monitor presence set: choose agents with selectors, or --all", file=sys.stderr)
        return 2
    body = {
        "to": args.to,
        "select": select,
        "dry_run": args.dry_run,
        "force": args.force,
        "max_agents": args.max_agents,
        "requested_by": f"cli:{getpass.getuser()}",
    }
    url = (args.url or f"http://{settings.http.listen.replace('0.0.0.0', '127.0.0.1')}").rstrip("/")
    request = urllib.request.Request(
        url + PATH,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {settings.http.token}"} if settings.http.token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        print(f"monitor presence set: refused ({exc.code}): {message}", file=sys.stderr)
        return 2 if exc.code in (400, 422) else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"monitor presence set: cannot reach the monitor at {url}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print_result(answer)
    return 1 if answer["counts"].get("failed") else 0


def _print_result(answer: dict[str, Any]) -> None:
    target = answer["target"]
    mode = "dry run: nothing changed" if answer["dry_run"] else "applied"
    print(
        f"to {target['label']} ({target['system_presence']}), {mode}, request {answer['request_id']}"
    )
    rows = [
        (a["outcome"], a["name"], a["agent_id"], a["from"] or "-", a.get("error", ""))
        for a in answer["agents"]
    ]
    for row in sorted(rows):
        print("  " + "  ".join(str(col) for col in row).rstrip())
    counts = (
        ", ".join(f"{k} {v}" for k, v in sorted(answer["counts"].items())) or "no agent selected"
    )
    print(counts)


def _audit(args: argparse.Namespace) -> int:
    settings = config.load(args.config, require_credentials=False)
    from monitor.store import Store  # noqa: PLC0415

    async def read() -> list[dict[str, Any]]:
        async with await Store.open(settings.storage.path) as store:
            records = await store.actions(
                args.since, args.until, agent_id=args.agent, actor=args.actor
            )
        return [
            {
                "at": format_iso_ms(r.at_ms),
                "actor": r.actor,
                "agent_id": r.agent_id,
                "from": r.from_value,
                "to": r.to_value,
                "dry_run": r.dry_run,
                "outcome": r.outcome,
                "error": r.error,
                "request_id": r.request_id,
                "event_time": None if r.event_ms is None else format_iso_ms(r.event_ms),
            }
            for r in records
        ]

    rows: list[dict[str, Any]] = []

    async def main() -> None:
        rows.extend(await read())

    code = guarded(main)
    if code:
        return code
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
    elif args.format == "csv":
        writer = csv.DictWriter(
            sys.stdout, fieldnames=list(rows[0]) if rows else ["at"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            dry = " (dry run)" if row["dry_run"] else ""
            print(
                f"{row['at']}  {row['actor']}  {row['agent_id']}  {row['from'] or '-'} -> "
                f"{row['to']}  {row['outcome']}{dry}  {row['error']}".rstrip()
            )
    return 0
