"""Builds the monitor's Grafana dashboards into grafana/dashboards/*.json.

    python grafana/build.py           # write the JSON files
    python grafana/build.py --check   # exit 1 if the committed files differ from what this builds

The JSON files are committed; these modules are their source (one per dashboard, plus common.py
and panels.py). Edit them, run this, commit both. Queries use only the monitor's metrics
(monitor/metrics.py), Prometheus's own `up`, and the recording rules in
prometheus/rules/genesys-recording.yml.

Variables: `instance` picks one monitor (an HA pair exports the same agents twice, so the
dashboards never add monitors up); `division` and `queue` filter. Queue membership is not a label
of the per-agent series (an agent is in many queues), so the queue filter applies to the
per-queue counts (`[metrics] by = ["queue"]`) only, shown by name (`genesys_queue_info`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent_timeline import agent_timeline
from floor_overview import floor_overview
from monitor_health import monitor_health
from panels import Json

OUT = Path(__file__).resolve().parent / "dashboards"


DASHBOARDS = {
    "genesys-floor-overview.json": floor_overview,
    "genesys-agent-timeline.json": agent_timeline,
    "genesys-monitor-health.json": monitor_health,
}


def render(build: Callable[[], Json]) -> str:
    """The dashboard as committed: sorted keys, so that diffs stay small and stable."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Grafana dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="only compare with the committed files"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = OUT / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run `python grafana/build.py` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
