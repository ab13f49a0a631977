"""The floor overview: agents per presence and routing status now and over time, on and off
queue, stuck agents by rule, who has been longest in their status, and the per-queue counts."""

from __future__ import annotations

from common import (
    DIV,
    IDLE,
    INST,
    LATEST_CHANGE,
    NAME_JOIN,
    NOT_OFFLINE,
    NOT_RESPONDING,
    OFFLINE,
    PRESENCE_COLORS,
    QUEUE_STATE_COLORS,
    ROUTABLE_MATCH,
    ROUTING_COLORS,
    instance_variable,
    sel,
    state_column,
)
from layout import Grid, dashboard, datasource_variable, label_variable
from panels import (
    Json,
    bargauge,
    color_overrides,
    field_override,
    query,
    stat,
    table,
    thresholds,
    timeseries,
)

COUNTS = sel("genesys_agents", INST, DIV)
LOGGED_IN = sel("genesys_agents", INST, DIV, NOT_OFFLINE)


def group(state: str) -> str:
    """The recorded count of agents on queue, off queue or offline (genesys-recording.yml)."""
    return sel("division_queue_state:genesys_agents:sum", INST, DIV, f'queue_state="{state}"')


def members(*matchers: str) -> str:
    """Logged-in members of the selected queues, with each queue's name (genesys_queue_info)."""
    counts = sel("genesys_queue_agents", INST, NOT_OFFLINE, *matchers)
    names = sel("genesys_queue_info", INST, 'queue_name=~"$queue"')
    return f"({counts} * on (queue_id) group_left (queue_name) {names})"


def _now(grid: Grid) -> None:
    """Headline counts: watched, on queue, off queue, offline, not responding, stuck."""
    grid.section("Now")
    grid.add(
        stat(
            "Watched agents",
            [query(f"sum({COUNTS})", instant=True)],
            description="Agents in the watched roster (in the selected divisions).",
        ),
        stat(
            "On queue",
            [query(f"sum({group('on_queue')})", instant=True)],
            description="Logged-in agents Genesys can route to: routing status IDLE, "
            "INTERACTING, NOT_RESPONDING or COMMUNICATING.",
            steps=thresholds((None, "green")),
        ),
        stat(
            "Off queue, logged in",
            [query(f"sum({group('off_queue')})", instant=True)],
            description="Logged-in agents Genesys does not route to (routing status OFF_QUEUE).",
            steps=thresholds((None, "orange")),
        ),
        stat(
            "Offline",
            [query(f"sum({group('offline')})", instant=True)],
            description="Watched agents whose presence is Offline.",
            steps=thresholds((None, "#8e8e8e")),
        ),
        stat(
            "Not responding",
            [
                query(
                    f"sum({sel('genesys_agents', INST, DIV, NOT_RESPONDING)}) or vector(0)",
                    instant=True,
                )
            ],
            description="Agents who did not answer an offered interaction: Genesys routes "
            "nothing to them until they are back to IDLE.",
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Stuck now",
            [
                query(
                    "count(count by (agent_id) "
                    f"({sel('genesys_agent_stuck', INST)} {NAME_JOIN})) or vector(0)",
                    instant=True,
                )
            ],
            description="Agents for whom at least one of the monitor's stuck-agent rules is "
            "firing (needs per-agent metrics).",
            steps=thresholds((None, "green"), (1, "red")),
        ),
    )


def _presence_and_routing(grid: Grid) -> None:
    """Agents per presence and routing status, now and over time; on vs off queue."""
    grid.section("Presence and routing status")
    by_presence = f"sum by (presence) ({COUNTS})"
    by_routing = f"sum by (routing_status) ({LOGGED_IN})"
    grid.add(
        bargauge(
            "Agents per presence now",
            [query(by_presence, "{{presence}}", instant=True)],
            description="Watched agents per system presence; UNKNOWN until first seen.",
            overrides=color_overrides(PRESENCE_COLORS),
            size=(6, 9),
        ),
        timeseries(
            "Agents per presence",
            [query(by_presence, "{{presence}}")],
            description="Watched agents per system presence over time.",
            stacked=True,
            overrides=color_overrides(PRESENCE_COLORS),
            size=(18, 9),
        ),
        bargauge(
            "Logged-in agents per routing status now",
            [query(by_routing, "{{routing_status}}", instant=True)],
            description="Agents not Offline, per routing status.",
            overrides=color_overrides(ROUTING_COLORS),
            size=(6, 9),
        ),
        timeseries(
            "Logged-in agents per routing status",
            [query(by_routing, "{{routing_status}}")],
            description="Agents not Offline, per routing status, over time.",
            stacked=True,
            overrides=color_overrides(ROUTING_COLORS),
            size=(18, 9),
        ),
        timeseries(
            "On queue vs off queue",
            [
                query(
                    "sum by (queue_state) "
                    f"({sel('division_queue_state:genesys_agents:sum', INST, DIV)})",
                    "{{queue_state}}",
                )
            ],
            description="On queue: logged in and routable. Off queue: logged in, not routable. "
            "From the recording rule division_queue_state:genesys_agents:sum.",
            stacked=True,
            overrides=color_overrides(QUEUE_STATE_COLORS),
        ),
        timeseries(
            "On queue per division",
            [query(f"sum by (division) ({group('on_queue')})", "{{division}}")],
            description="Agents on queue in each division. Needs `[metrics] by` to include "
            '"division" in the monitor\'s settings.',
        ),
    )


def _stuck(grid: Grid) -> None:
    """The monitor's stuck-agent rules: counts by rule and who is stuck."""
    grid.section("Stuck agents")
    stuck_by_rule = f"sum by (rule) ({sel('genesys_agents_stuck', INST)})"
    grid.add(
        bargauge(
            "Stuck agents by rule now",
            [query(stuck_by_rule, "{{rule}}", instant=True)],
            description="Agents for whom each of the monitor's stuck-agent rules is firing (all "
            "divisions). The rules and their thresholds are in the monitor's settings.",
            size=(6, 9),
        ),
        timeseries(
            "Stuck agents by rule",
            [query(stuck_by_rule, "{{rule}}")],
            description="The monitor's stuck-agent rules over time (all divisions).",
            stacked=True,
            size=(9, 9),
        ),
        table(
            "Stuck now",
            [
                query(
                    f"(time() - {LATEST_CHANGE}) * on (agent_id) group_right () "
                    f"({sel('genesys_agent_stuck', INST)} {NAME_JOIN})",
                    table=True,
                )
            ],
            description="Who is stuck, by which rule, and for how long nothing has changed "
            "for them (neither presence nor routing status).",
            columns={
                "agent_name": "Agent",
                "division": "Division",
                "rule": "Rule",
                "Value": "Unchanged for",
            },
            sort_by="Unchanged for",
            overrides=[field_override("Unchanged for", unit="s")],
            size=(9, 9),
        ),
    )


def _longest(grid: Grid) -> None:
    """Who has been longest in their current presence and routing status."""
    grid.section("Longest in current status (agents not Offline)")
    presence_expr = (
        "topk(20, (time() - "
        f"{sel('genesys_agent_presence_changed_timestamp_seconds', INST)}) "
        "* on (agent_id) group_left (presence) "
        f"{sel('genesys_agent_presence', INST, NOT_OFFLINE)} {NAME_JOIN})"
    )
    routing_expr = (
        "topk(20, (time() - "
        f"{sel('genesys_agent_routing_status_changed_timestamp_seconds', INST)}) "
        "* on (agent_id) group_left (routing_status) "
        f"{sel('genesys_agent_routing_status', INST)} {NAME_JOIN} unless on (agent_id) "
        f"{sel('genesys_agent_presence', INST, OFFLINE)})"
    )
    grid.add(
        table(
            "Longest in current presence",
            [query(presence_expr, table=True)],
            description="The 20 logged-in agents longest in their current presence.",
            columns={
                "agent_name": "Agent",
                "division": "Division",
                "presence": "Presence",
                "Value": "For",
            },
            sort_by="For",
            overrides=[field_override("For", unit="s"), state_column("Presence", PRESENCE_COLORS)],
        ),
        table(
            "Longest in current routing status",
            [query(routing_expr, table=True)],
            description="The 20 logged-in agents longest in their current routing status.",
            columns={
                "agent_name": "Agent",
                "division": "Division",
                "routing_status": "Routing status",
                "Value": "For",
            },
            sort_by="For",
            overrides=[
                field_override("For", unit="s"),
                state_column("Routing status", ROUTING_COLORS),
            ],
        ),
    )


def _queues(grid: Grid) -> None:
    """Per-queue counts by queue name, filtered by the queue variable."""
    grid.section("Queues")

    grid.add(
        timeseries(
            "On queue per queue",
            [
                query(
                    f"sum by (queue_name) ({members(ROUTABLE_MATCH)})",
                    "{{queue_name}}",
                )
            ],
            description="Members of each queue who are on queue. An agent in several queues "
            'counts in each. Needs `[metrics] by` to include "queue"; not filtered by division.',
        ),
        timeseries(
            "Waiting for an interaction per queue",
            [
                query(
                    f"sum by (queue_name) ({members(IDLE)})",
                    "{{queue_name}}",
                )
            ],
            description="Members of each queue on queue and IDLE: free to take an interaction.",
        ),
        table(
            "Queue members now by routing status",
            [query(f"sum by (queue_name, routing_status) ({members()})", table=True)],
            description="Logged-in members of each queue per routing status.",
            columns={
                "queue_name\\routing_status": "Queue",
                **{status: status for status in ROUTING_COLORS if status != "OTHER"},
            },
            sort_by="IDLE",
            hidden=(),
            extra_transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "columnField": "routing_status",
                        "emptyValue": "zero",
                        "rowField": "queue_name",
                        "valueField": "Value",
                    },
                }
            ],
            size=(24, 8),
        ),
    )


def _stretches(grid: Grid) -> None:
    """Median length of completed stretches per status."""
    grid.section("Completed stretches (over the dashboard's time range)")
    for kind, label in (("routing", "routing status"), ("presence", "presence")):
        buckets = sel("genesys_status_duration_seconds_bucket", INST, f'kind="{kind}"')
        grid.add(
            bargauge(
                f"Median completed stretch per {label}",
                [
                    query(
                        # NaN (no stretch ended in the range) is left out rather than shown.
                        "histogram_quantile(0.5, sum by (status, le) "
                        f"(increase({buckets}[$__range]))) >= 0",
                        "{{status}}",
                        instant=True,
                    )
                ],
                description=f"Median length of the stretches in each {label} that ended in the "
                "time range (all divisions; estimated from histogram buckets).",
                unit="s",
                size=(12, 8),
            )
        )


def floor_overview() -> Json:
    grid = Grid()
    _now(grid)
    _presence_and_routing(grid)
    _stuck(grid)
    _longest(grid)
    _queues(grid)
    _stretches(grid)
    return dashboard(
        uid="genesys-floor",
        title="Genesys floor overview",
        description="Agents per presence and routing status, on and off queue, stuck agents, "
        "time in status, queues.",
        variables=[
            datasource_variable(),
            instance_variable(),
            label_variable(
                "division",
                "Division",
                sel("genesys_agents", INST),
                "division",
                multi=True,
                description='Needs `[metrics] by` to include "division".',
            ),
            label_variable(
                "queue",
                "Queue",
                sel("genesys_queue_info", INST),
                "queue_name",
                multi=True,
                description='Filters the Queues section. Needs `[metrics] by` to include "queue".',
            ),
        ],
        grid=grid,
        time_from="now-12h",
    )
