"""The Grafana dashboards and provisioning as files: generated from grafana/build.py, loadable by
file provisioning (fixed uids, classic JSON, the datasource variable everywhere), laid out without
overlaps, every query valid PromQL, and the state codes in step with the recording rules.

Whether every query returns data from a real Prometheus is tests/test_grafana_queries.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.test_deploy import parse_yaml

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
RECORDING_RULES = ROOT / "prometheus" / "rules" / "genesys-recording.yml"
SCHEMA_VERSION = 41
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PROVISIONED_UID = "prometheus"

# --- helpers shared with test_grafana_queries.py ------------------------------------------------


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(
            dashboard["title"],
            panel["title"],
            target["refId"],
            target["expr"],
            bool(target.get("instant")) and not target.get("range"),
        )
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = dashboard["templating"]["list"]
    return found


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

# Grafana's built-in variables, as a panel over a few hours with 15 s scrapes would get them.
MACROS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's macros and the dashboard's variables replaced, as Grafana sends the query."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)


_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords and labels left out)."""
    names = {
        name
        for match in re.finditer(r'__name__=~?"([^"]*)"', expr)
        for name in match.group(1).split("|")
    }
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if word in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def recorded_names() -> set[str]:
    return set(re.findall(r"^\s*- record: (\S+)\s*$", RECORDING_RULES.read_text(), re.MULTILINE))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: scripts/system-packages installs Debian's prometheus")
    return path


# --- the tests -----------------------------------------------------------------------------------


def test_committed_dashboards_are_what_build_py_generates() -> None:
    """grafana/dashboards/*.json are exactly the output of grafana/build.py, so a change made in
    one place only cannot slip through."""
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in DASHBOARD_FILES} == {
        "genesys-floor-overview.json",
        "genesys-agent-timeline.json",
        "genesys-monitor-health.json",
    }


def test_uids_titles_and_schema_are_fixed_and_unique() -> None:
    """Each dashboard is classic JSON with a fixed, unique uid and title and the pinned
    schemaVersion, and carries no export-for-sharing inputs."""
    dashboards = [load(p) for p in DASHBOARD_FILES]
    uids = [d["uid"] for d in dashboards]
    titles = [d["title"] for d in dashboards]
    assert all(re.fullmatch(r"[a-z0-9-]{1,40}", uid) for uid in uids)
    assert len(set(uids)) == len(uids) == 3
    assert len(set(titles)) == len(titles)
    for dashboard in dashboards:
        assert dashboard["schemaVersion"] == SCHEMA_VERSION
        assert "__inputs" not in dashboard
        assert "elements" not in dashboard  # the v2 resource model cannot be file-provisioned
        assert "id" not in dashboard  # Grafana assigns ids; a fixed one would clash
        assert dashboard["tags"] == ["genesys"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_datasource_is_the_variable(path: Path) -> None:
    """Every panel and query uses `${datasource}`, a datasource variable of type prometheus
    exists, and no `${DS_...}` placeholder (which file provisioning leaves unresolved) is left."""
    dashboard = load(path)
    assert "${DS_" not in path.read_text()
    (variable,) = [v for v in variables(dashboard) if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in variables(dashboard):
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_panels_have_unique_ids_and_do_not_overlap(path: Path) -> None:
    """Panel ids are unique, every panel has a title and a description, query refIds are unique
    within a panel, and no two panels' grid rectangles overlap or leave the 24-column grid."""
    dashboard = load(path)
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= 24, panel["title"]
        assert 0 <= pos["y"] < pos["y"] + pos["h"], panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        assert panel["title"].strip()
        if panel["type"] != "row":
            assert panel["description"].strip(), panel["title"]
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), panel["title"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Every panel query and variable query parses: `promtool check rules` accepts them all as
    recording rules, with Grafana's macros and variables substituted."""
    exprs = []
    for path in DASHBOARD_FILES:
        dashboard = load(path)
        names = {v["name"]: ".*" for v in variables(dashboard)}
        exprs += [substitute(q.expr, names) for q in queries(dashboard)]
        for variable in variables(dashboard):
            if variable["type"] == "query":
                match = LABEL_VALUES.match(variable["definition"])
                assert match, variable["definition"]
                assert variable["query"]["query"] == variable["definition"]
                exprs.append(substitute(match["selector"], names))
    assert len(exprs) > 40
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(exprs)
                ],
            }
        ]
    }
    # JSON is YAML, so promtool reads this file as it is.
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(json.dumps(rules, indent=1))
    result = subprocess.run(
        [promtool(), "check", "rules", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def _codes(kind: str) -> dict[int, str]:
    """State -> code pairs of one recording rule, as written in the rule file."""
    text = RECORDING_RULES.read_text()
    block = text.split(f"record: agent_id:genesys_agent_{kind}:code", 1)[1].split("- record:")[0]
    label = "presence" if kind == "presence" else "routing_status"
    pairs = re.findall(rf'{label}="(\w+)"\}} \* (\d+)', block)
    codes = {int(code): name for name, code in pairs}
    assert f"genesys_agent_{kind} * 0" in block  # states without a code are 0, not dropped
    return {0: "OTHER", **codes}


@pytest.mark.parametrize("kind", ["presence", "routing_status"])
def test_timeline_value_mappings_match_the_recording_rules(kind: str) -> None:
    """The agent timeline maps each code to the state the recording rule gives that code."""
    dashboard = load(GRAFANA / "dashboards" / "genesys-agent-timeline.json")
    (panel,) = [
        p
        for p in all_panels(dashboard)
        if any(f"agent_id:genesys_agent_{kind}:code" in t["expr"] for t in p.get("targets", []))
    ]
    assert panel["type"] == "state-timeline"
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    shown = {int(code): option["text"] for code, option in mapping["options"].items()}
    assert shown == _codes(kind)
    assert len(set(shown.values())) == len(shown)


def test_metric_names_are_found_in_queries() -> None:
    """The metric-name extraction used to cross-check the dashboards finds names and only
    names (so a misspelt metric cannot hide behind it)."""
    expr = (
        'topk(20, (time() - max by (agent_id) ({__name__=~"a_seconds|b_seconds", x="$v"})) '
        '* on (agent_id) group_left (agent_name) info{division=~"$d"} unless on (agent_id) '
        'c_total{presence="OFFLINE"} or vector(0) + rate(d_bucket{le="+Inf"}[$__rate_interval]))'
    )
    assert metric_names(expr) == {"a_seconds", "b_seconds", "info", "c_total", "d_bucket"}
    assert metric_names("sum(division_queue_state:genesys_agents:sum) > bool 0") == {
        "division_queue_state:genesys_agents:sum"
    }


def test_provisioning_files_point_at_the_dashboards() -> None:
    """The datasource is provisioned with the fixed uid `prometheus`, its URL from the
    environment and the scrape interval; the dashboard provider reads the folder the compose file
    mounts the JSON into, and does not let UI edits overwrite the files."""
    provisioning = GRAFANA / "provisioning"
    datasources = parse_yaml((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == "1"
    (source,) = datasources["datasources"]
    assert source["uid"] == PROVISIONED_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "${PROMETHEUS_URL}"
    assert source["jsonData"]["timeInterval"] == "15s"  # $__rate_interval is derived from it
    providers = parse_yaml((provisioning / "dashboards" / "genesys.yaml").read_text())
    assert providers["apiVersion"] == "1"
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] == "false"
    compose = parse_yaml((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
