"""Dashboard-level pieces of classic (v1) Grafana JSON: the datasource and label variables,
the grid that places panels, and the dashboard itself."""

from __future__ import annotations

from collections.abc import Sequence

from panels import DATASOURCE, SCHEMA_VERSION, Json

GRID_WIDTH = 24


def datasource_variable() -> Json:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "type": "datasource",
    }


def label_variable(
    name: str, label: str, metric: str, label_name: str, *, multi: bool, description: str = ""
) -> Json:
    """A variable holding the values of one label of a metric; `multi` adds "All" (any value,
    including a missing label) and several selections."""
    definition = f"label_values({metric}, {label_name})"
    variable: Json = {
        "current": {},
        "datasource": DATASOURCE,
        "definition": definition,
        "description": description,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {
            "qryType": 1,
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


# --- layout and dashboard ------------------------------------------------------------------------


class Grid:
    """Places panels left to right on a grid 24 units wide, in sections under row headers, and
    numbers them. Each panel comes with its width and height; one that does not fit on the
    current line starts the next."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def section(self, title: str) -> None:
        self._new_line()
        row = {"collapsed": False, "panels": [], "title": title, "type": "row"}
        self._place(row, GRID_WIDTH, 1)
        self._new_line()

    def add(self, *panels: Json) -> None:
        for item in panels:
            width, height = item["gridPos"]["w"], item["gridPos"]["h"]
            if self._x + width > GRID_WIDTH:
                self._new_line()
            self._place(item, width, height)

    def _place(self, item: Json, width: int, height: int) -> None:
        item["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        item["id"] = len(self.panels) + 1
        self.panels.append(item)
        self._x += width
        self._line_height = max(self._line_height, height)


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Json],
    grid: Grid,
    time_from: str = "now-6h",
) -> Json:
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": ["genesys"],
                "targetBlank": False,
                "title": "Genesys dashboards",
                "type": "dashboards",
            }
        ],
        "panels": grid.panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["genesys"],
        "templating": {"list": list(variables)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }
