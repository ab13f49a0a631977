"""The agent timeline: per-agent State timelines of routing status, presence and stuck-agent
rules, and a sortable table of every agent's current status and time in it."""

from __future__ import annotations

from common import (
    DIV,
    INST,
    PRESENCE_CODES,
    PRESENCE_COLORS,
    ROUTING_CODES,
    ROUTING_COLORS,
    instance_variable,
    sel,
    state_column,
)
from layout import Grid, dashboard, datasource_variable, label_variable
from panels import Json, field_override, query, state_timeline, table, value_mappings


def agent_timeline() -> Json:
    grid = Grid()
    chosen = sel("genesys_agent_info", INST, DIV, 'agent_name=~"$agent"')
    named = f"* on (agent_id) group_left (agent_name) {chosen}"
    grid.add(
        state_timeline(
            "Routing status",
            [
                query(
                    f"{sel('agent_id:genesys_agent_routing_status:code', INST)} {named}",
                    "{{agent_name}}",
                )
            ],
            description="Each agent's routing status over time, as Prometheus sampled it: a "
            "change shorter than the scrape interval may not show (the monitor's database has "
            "every transition). From the recording rule agent_id:genesys_agent_routing_status:code.",
            mappings=value_mappings(ROUTING_CODES, ROUTING_COLORS),
            size=(24, 12),
        ),
        state_timeline(
            "Presence",
            [
                query(
                    f"{sel('agent_id:genesys_agent_presence:code', INST)} {named}", "{{agent_name}}"
                )
            ],
            description="Each agent's system presence over time, as Prometheus sampled it. From "
            "the recording rule agent_id:genesys_agent_presence:code.",
            mappings=value_mappings(PRESENCE_CODES, PRESENCE_COLORS),
            size=(24, 12),
        ),
        state_timeline(
            "Stuck-agent rules firing",
            [query(f"{sel('genesys_agent_stuck', INST)} {named}", "{{agent_name}}: {{rule}}")],
            description="When the monitor's stuck-agent rules fired for the selected agents.",
            mappings=value_mappings({1: "stuck"}, {"stuck": "red"}),
            size=(24, 6),
        ),
    )
    full_join = f"* on (agent_id) group_left (agent_name, division) {chosen}"
    grid.add(
        table(
            "Agents now",
            [
                query(
                    f"(time() - {sel('genesys_agent_presence_changed_timestamp_seconds', INST)}) "
                    f"* on (agent_id) group_left (presence) {sel('genesys_agent_presence', INST)} "
                    f"{full_join}",
                    table=True,
                ),
                query(
                    "(time() - "
                    f"{sel('genesys_agent_routing_status_changed_timestamp_seconds', INST)}) "
                    "* on (agent_id) group_left (routing_status) "
                    f"{sel('genesys_agent_routing_status', INST)} {full_join}",
                    table=True,
                ),
            ],
            description="Every selected agent's current presence and routing status and how "
            "long each has lasted. Click a column header to sort.",
            columns={
                "agent_name": "Agent",
                "division": "Division",
                "presence": "Presence",
                "Value #A": "In presence for",
                "routing_status": "Routing status",
                "Value #B": "In routing status for",
            },
            sort_by="In routing status for",
            overrides=[
                field_override("In presence for", unit="s"),
                field_override("In routing status for", unit="s"),
                state_column("Presence", PRESENCE_COLORS),
                state_column("Routing status", ROUTING_COLORS),
            ],
            size=(24, 14),
        )
    )
    return dashboard(
        uid="genesys-agent-timeline",
        title="Genesys agent timeline",
        description="Per-agent presence and routing status over time, and every agent's current "
        "status with the time in it.",
        variables=[
            datasource_variable(),
            instance_variable(),
            label_variable(
                "division", "Division", sel("genesys_agent_info", INST), "division", multi=True
            ),
            label_variable(
                "agent",
                "Agent",
                sel("genesys_agent_info", INST, DIV),
                "agent_name",
                multi=True,
                description="Pick a few agents, or a division: a timeline of hundreds of rows "
                "is slow to draw.",
            ),
        ],
        grid=grid,
        time_from="now-12h",
    )
