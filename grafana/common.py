"""What the three dashboards share: state names, their colours and codes, label matchers and
joins, and a few panel pieces. The codes are those of the recording rules in
prometheus/rules/genesys-recording.yml (a test checks that they agree)."""

from __future__ import annotations

from layout import label_variable
from panels import Json, field_override, query, text_mappings

PRESENCE_COLORS = {
    "ON_QUEUE": "green",
    "AVAILABLE": "light-green",
    "IDLE": "light-yellow",
    "AWAY": "yellow",
    "BUSY": "orange",
    "BREAK": "light-blue",
    "MEAL": "purple",
    "MEETING": "blue",
    "TRAINING": "dark-blue",
    "OFFLINE": "#8e8e8e",
    "OTHER": "text",
}
ROUTING_COLORS = {
    "IDLE": "green",
    "INTERACTING": "blue",
    "COMMUNICATING": "purple",
    "NOT_RESPONDING": "red",
    "OFF_QUEUE": "#8e8e8e",
    "OTHER": "text",
}
QUEUE_STATE_COLORS = {"on_queue": "green", "off_queue": "orange", "offline": "#8e8e8e"}
# The codes of the recording rules agent_id:genesys_agent_*:code (0: a state added later).
PRESENCE_CODES = {
    0: "OTHER",
    1: "AVAILABLE",
    2: "AWAY",
    3: "BUSY",
    4: "OFFLINE",
    5: "IDLE",
    6: "ON_QUEUE",
    7: "MEAL",
    8: "TRAINING",
    9: "MEETING",
    10: "BREAK",
}
ROUTING_CODES = {
    0: "OTHER",
    1: "OFF_QUEUE",
    2: "IDLE",
    3: "INTERACTING",
    4: "NOT_RESPONDING",
    5: "COMMUNICATING",
}
# Routing statuses of a logged-in agent Genesys routes to: "on queue".
ROUTABLE = "IDLE|INTERACTING|NOT_RESPONDING|COMMUNICATING"

# Label matchers used throughout. One monitor instance at a time: an HA pair exports the same
# agents twice, so summing over instances would count them twice.
INST = 'instance="$instance"'
DIV = 'division=~"$division"'
OFFLINE = 'presence="OFFLINE"'
NOT_OFFLINE = 'presence!="OFFLINE"'
IDLE = 'routing_status="IDLE"'
ROUTABLE_MATCH = f'routing_status=~"{ROUTABLE}"'
NOT_RESPONDING = 'routing_status="NOT_RESPONDING"'


def sel(metric: str, *matchers: str) -> str:
    """A series selector: `metric{matcher, ...}`."""
    return f"{metric}{{{', '.join(matchers)}}}"


INFO = sel("genesys_agent_info", INST, DIV)
# Appended to a per-agent expression: adds the agent's name and division, and keeps only agents
# in the selected divisions.
NAME_JOIN = f"* on (agent_id) group_left (agent_name, division) {INFO}"
# When the later of the agent's two current states began: since then nothing has changed.
LATEST_CHANGE = (
    "max by (agent_id) ("
    + sel(
        "",
        '__name__=~"genesys_agent_presence_changed_timestamp_seconds'
        '|genesys_agent_routing_status_changed_timestamp_seconds"',
        INST,
    )
    + ")"
)


def instance_variable() -> Json:
    return label_variable(
        "instance",
        "Monitor",
        "monitor_build_info",
        "instance",
        multi=False,
        description="The monitor instance (Prometheus target) to show.",
    )


def histogram_quantiles(metric: str, quantiles: tuple[float, ...] = (0.5, 0.99)) -> list[Json]:
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({sel(metric + '_bucket', INST)}[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in quantiles
    ]


def state_column(header: str, colors: dict[str, str]) -> Json:
    return field_override(
        header, mappings=text_mappings(colors), **{"custom.cellOptions": {"type": "color-text"}}
    )
