"""Report output: the JSON shapes (the HTTP API serves the same), aligned text tables and CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from monitor.core.timefmt import format_iso_ms
from monitor.store.agent_day import AgentTimeline
from monitor.store.reports import StatusTimeReport

FORMATS = ("table", "csv", "json")


# --- JSON shapes (shared with the HTTP API) -----------------------------------------------------


def seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def status_time_json(report: StatusTimeReport) -> dict[str, Any]:
    return {
        "report": "status-time",
        "from": report.first.isoformat(),
        "to": report.last.isoformat(),
        "timezone": report.timezone,
        "by": list(report.by),
        "generated_at": format_iso_ms(report.now_ms),
        "rows": [
            {
                **row.group,
                "kind": row.kind,
                "status": row.status,
                "seconds": seconds(row.totals.ms),
                "uncertain_seconds": seconds(row.totals.uncertain_ms),
                "transitions": row.totals.entries,
                "longest_seconds": seconds(row.totals.longest_ms),
            }
            for row in report.rows
        ],
        "gaps": [
            {
                "channel": gap.channel_id,
                "start": format_iso_ms(gap.start_ms),
                "end": format_iso_ms(gap.end_ms),
                "reason": gap.reason,
                "agents": len(gap.agents) or "all",
            }
            for gap in report.gaps
        ],
    }


def timeline_json(timeline: AgentTimeline, timezone: str) -> dict[str, Any]:
    agent = timeline.agent
    return {
        "report": "agent-timeline",
        "agent": {
            "id": agent.id,
            "name": agent.name,
            "division": agent.division_name or agent.division_id,
            "queues": list(agent.queue_ids),
        },
        "from": format_iso_ms(timeline.start_ms),
        "to": format_iso_ms(timeline.end_ms),
        "timezone": timezone,
        "generated_at": format_iso_ms(timeline.now_ms),
        "intervals": [
            {
                "kind": i.kind,
                "status": i.value,
                "definition_id": i.definition_id,
                "start": format_iso_ms(i.start_ms),
                "end": format_iso_ms(i.end_ms),
                "since": format_iso_ms(i.since_ms),
                "seconds": seconds(i.ms),
                "uncertain_seconds": seconds(i.uncertain_ms),
                "source": i.source,
            }
            for i in timeline.intervals
        ],
        "actions": [
            {
                "at": format_iso_ms(a.at_ms),
                "actor": a.actor,
                "from": a.from_value,
                "to": a.to_value,
                "dry_run": a.dry_run,
                "outcome": a.outcome,
                "error": a.error,
                "request_id": a.request_id,
            }
            for a in timeline.actions
        ],
        "gaps": [
            {
                "channel": g.channel_id,
                "start": format_iso_ms(g.start_ms),
                "end": format_iso_ms(g.end_ms),
                "reason": g.reason,
            }
            for g in timeline.gaps
        ],
    }


# --- text and CSV -------------------------------------------------------------------------------


def duration(ms: int) -> str:
    """H:MM:SS, hours unbounded (a month in one status is hundreds of hours)."""
    total = round(ms / 1000)
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Aligned plain text; columns in `right` are right-aligned (numbers)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if n in right else cell.ljust(width)
            for n, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)]) + "\n"


_GROUP_HEADERS = {"agent_id": "AGENT", "agent_name": "NAME", "division": "DIVISION"}


def group_columns(by: Sequence[str]) -> list[str]:
    """The columns that name a row's group, in the order of `by`."""
    names = {"agent": ["agent_id", "agent_name"]}
    return [column for part in by for column in names.get(part, [part])]


def write_status_time(report: StatusTimeReport, fmt: str, out: IO[str]) -> None:
    data = status_time_json(report)
    if fmt == "json":
        out.write(json.dumps(data, indent=2) + "\n")
        return
    group = group_columns(report.by)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*group, "kind", "status", *_NUMBERS])
        for row in data["rows"]:
            writer.writerow([row[c] for c in (*group, "kind", "status", *_NUMBERS)])
        return
    header = [*(_GROUP_HEADERS.get(c, c.upper()) for c in group), "KIND", "STATUS"]
    header += ["TIME", "UNCERTAIN", "TRANSITIONS", "LONGEST"]
    rows = [
        [
            *(str(row.group.get(c, "")) or "-" for c in group),
            row.kind,
            row.status,
            duration(row.totals.ms),
            duration(row.totals.uncertain_ms) if row.totals.uncertain_ms else "-",
            str(row.totals.entries),
            duration(row.totals.longest_ms),
        ]
        for row in report.rows
    ]
    first = len(group) + 2
    out.write(
        f"Time in status, {report.first} to {report.last} ({report.timezone}),"
        f" by {', '.join(report.by)}\n\n"
    )
    out.write(table(header, rows, right=set(range(first, first + 4))) if rows else "No data.\n")
    if report.gaps:
        out.write(
            f"\n{len(report.gaps)} gap(s) overlap this period: time inside them is counted as"
            " UNCERTAIN, not as time in status.\n"
        )


_NUMBERS = ("seconds", "uncertain_seconds", "transitions", "longest_seconds")


@dataclass(frozen=True, slots=True)
class _Line:
    kind: str
    start_ms: int
    end_ms: int | None
    status: str
    detail: str


def _lines(timeline: AgentTimeline) -> list[_Line]:
    """Intervals, actions and gaps in one chronological list."""
    lines = [
        _Line(
            i.kind,
            i.start_ms,
            i.end_ms,
            i.value,
            f"uncertain {duration(i.uncertain_ms)}" if i.uncertain_ms else "",
        )
        for i in timeline.intervals
    ]
    for action in timeline.actions:
        detail = f"{action.outcome} by {action.actor}" + (" (dry run)" if action.dry_run else "")
        if action.error:
            detail += f": {action.error}"
        change = f"{action.from_value or '?'} -> {action.to_value}"
        lines.append(_Line("action", action.at_ms, None, change, detail))
    for gap in timeline.gaps:
        lines.append(_Line("gap", gap.start_ms, gap.end_ms, "", f"{gap.reason} ({gap.channel_id})"))
    order = {"presence": 0, "routing": 1, "action": 2, "gap": 3}
    lines.sort(key=lambda line: (line.start_ms, order.get(line.kind, 4)))
    return lines


def write_timeline(timeline: AgentTimeline, fmt: str, out: IO[str], timezone: str) -> None:
    if fmt == "json":
        out.write(json.dumps(timeline_json(timeline, timezone), indent=2) + "\n")
        return
    lines = _lines(timeline)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["type", "start", "end", "seconds", "status", "detail"])
        for line in lines:
            end = "" if line.end_ms is None else format_iso_ms(line.end_ms)
            length = "" if line.end_ms is None else str(seconds(line.end_ms - line.start_ms))
            writer.writerow(
                [line.kind, format_iso_ms(line.start_ms), end, length, line.status, line.detail]
            )
        return
    zone = ZoneInfo(timezone)

    def local(ms: int) -> str:
        moment = datetime.fromtimestamp(ms / 1000, zone)
        return moment.strftime("%H:%M:%S") if ms < timeline.end_ms else moment.strftime("%d %H:%M")

    agent = timeline.agent
    day = datetime.fromtimestamp(timeline.start_ms / 1000, zone).date()
    out.write(f"{agent.name or agent.id} ({agent.id}), {day} ({timezone})\n\n")
    rows = [
        [
            local(line.start_ms),
            "" if line.end_ms is None else local(line.end_ms),
            "" if line.end_ms is None else duration(line.end_ms - line.start_ms),
            line.kind,
            line.status,
            line.detail,
        ]
        for line in lines
    ]
    header = ["FROM", "UNTIL", "DURATION", "TYPE", "STATUS", "NOTE"]
    out.write(table(header, rows, right={2}) if rows else "Nothing recorded.\n")
