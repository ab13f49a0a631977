"""Builders for the panels of classic (v1) Grafana dashboard JSON: queries, field settings and
the panel kinds the monitor's dashboards use, spelled the way Grafana itself saves it, so a dashboard
loaded and saved again by Grafana changes as little as possible. Every panel and query points at
the `${datasource}` variable, never at a fixed datasource uid, so the dashboards work both when
provisioned (the provisioned datasource has uid `prometheus`) and when imported by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Json = dict[str, Any]

# Classic dashboard model as written by Grafana 11.6 and 12; newer versions migrate it forward.
SCHEMA_VERSION = 41
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}


# --- queries -------------------------------------------------------------------------------------


def query(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    """A Prometheus query; `instant` for panels showing the latest value only, `table` for
    queries whose labels become table columns."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant or table,
        "legendFormat": legend or "__auto",
        "range": not (instant or table),
    }


# --- field settings ------------------------------------------------------------------------------


def value_mappings(names: Mapping[int, str], colors: Mapping[str, str]) -> list[Json]:
    """Numeric codes shown as state names, each in its state's colour."""
    options = {
        str(code): {"color": colors.get(name, "text"), "index": index, "text": name}
        for index, (code, name) in enumerate(sorted(names.items()))
    }
    return [{"options": options, "type": "value"}]


def text_mappings(colors: Mapping[str, str]) -> list[Json]:
    """State names (as label values in table cells) coloured like everywhere else."""
    options = {
        name: {"color": color, "index": index} for index, (name, color) in enumerate(colors.items())
    }
    return [{"options": options, "type": "value"}]


def color_overrides(colors: Mapping[str, str]) -> list[Json]:
    """Series named after a state get that state's colour in every panel."""
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in colors.items()
    ]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Colour steps: (None, base colour), then (from value, colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def field_override(name: str, **properties: Any) -> Json:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
_LEGEND = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}


# --- panels --------------------------------------------------------------------------------------


def panel(
    kind: str,
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    unit: str = "short",
    options: Json | None = None,
    defaults: Json | None = None,
    overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (),
    size: tuple[int, int] = (8, 8),
) -> Json:
    """A panel of any kind; `size` is (width, height) in grid units. layout.Grid places it."""
    field_defaults: Json = {"unit": unit, "color": {"mode": "palette-classic"}}
    field_defaults.update(defaults or {})
    result: Json = {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": field_defaults, "overrides": list(overrides)},
        "options": options or {},
        "targets": [
            {**target, "refId": chr(ord("A") + index)} for index, target in enumerate(targets)
        ],
        "title": title,
        "type": kind,
        "gridPos": {"h": size[1], "w": size[0]},
    }
    if transformations:
        result["transformations"] = list(transformations)
    return result


def stat(
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    unit: str = "short",
    steps: Json | None = None,
    mappings: Sequence[Json] = (),
    text_mode: str = "auto",
    size: tuple[int, int] = (4, 4),
) -> Json:
    return panel(
        "stat",
        title,
        targets,
        description=description,
        unit=unit,
        options={
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": _REDUCE_LAST,
            "textMode": text_mode,
        },
        defaults={
            "color": {"mode": "thresholds"},
            "mappings": list(mappings),
            "thresholds": steps or thresholds((None, "text")),
        },
        size=size,
    )


def timeseries(
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    unit: str = "short",
    stacked: bool = False,
    bars: bool = False,
    overrides: Sequence[Json] = (),
    size: tuple[int, int] = (12, 8),
) -> Json:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if stacked or bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
    }
    return panel(
        "timeseries",
        title,
        targets,
        description=description,
        unit=unit,
        options={"legend": _LEGEND, "tooltip": {"mode": "multi", "sort": "desc"}},
        defaults={"custom": custom, "min": 0},
        overrides=overrides,
        size=size,
    )


def bargauge(
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    unit: str = "short",
    overrides: Sequence[Json] = (),
    size: tuple[int, int] = (8, 8),
) -> Json:
    return panel(
        "bargauge",
        title,
        targets,
        description=description,
        unit=unit,
        options={
            "displayMode": "basic",
            "orientation": "horizontal",
            "reduceOptions": _REDUCE_LAST,
            "showUnfilled": True,
            "valueMode": "color",
        },
        defaults={"min": 0},
        overrides=overrides,
        size=size,
    )


def state_timeline(
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    mappings: Sequence[Json],
    size: tuple[int, int] = (24, 12),
) -> Json:
    return panel(
        "state-timeline",
        title,
        targets,
        description=description,
        options={
            "alignValue": "left",
            "legend": _LEGEND,
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "never",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        defaults={
            "color": {"mode": "thresholds"},
            "custom": {"fillOpacity": 80, "lineWidth": 0},
            "mappings": list(mappings),
            "thresholds": thresholds((None, "text")),
        },
        size=size,
    )


def table(
    title: str,
    targets: Sequence[Json],
    *,
    description: str,
    columns: Mapping[str, str],
    sort_by: str,
    hidden: Iterable[str] = ("Time", "instance", "job", "agent_id"),
    overrides: Sequence[Json] = (),
    extra_transformations: Sequence[Json] = (),
    size: tuple[int, int] = (12, 10),
) -> Json:
    """A table of instant queries: rows merged on their common labels, `columns` (field ->
    header, in order) shown, the rest hidden, sorted by `sort_by` (a header), largest first."""
    organize = {
        "excludeByName": dict.fromkeys(hidden, True),
        "indexByName": {name: index for index, name in enumerate(columns)},
        "renameByName": dict(columns),
    }
    return panel(
        "table",
        title,
        targets,
        description=description,
        options={
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": ""},
            "showHeader": True,
            "sortBy": [{"desc": True, "displayName": sort_by}],
        },
        defaults={"custom": {"align": "auto", "filterable": True}},
        overrides=overrides,
        transformations=[
            {"id": "merge", "options": {}},
            *extra_transformations,
            {"id": "organize", "options": organize},
        ],
        size=size,
    )
