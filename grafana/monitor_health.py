"""Monitor health: the daemon itself, from channels and heartbeats to the database writer,
tokens, presence changes and schedules."""

from __future__ import annotations

from common import (
    INST,
    histogram_quantiles,
    instance_variable,
    sel,
)
from layout import Grid, dashboard, datasource_variable
from panels import (
    Json,
    bargauge,
    field_override,
    query,
    stat,
    state_timeline,
    table,
    thresholds,
    timeseries,
    value_mappings,
)

UP_DOWN = value_mappings({0: "DOWN", 1: "UP"}, {"DOWN": "red", "UP": "green"})
BAD_IF_POSITIVE = thresholds((None, "green"), (1, "red"))


def rate(metric: str, by: str = "") -> str:
    """Per-second rate of a counter, summed (by the given labels)."""
    inner = f"rate({sel(metric, INST)}[$__rate_interval])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def increase(metric: str, by: str, window: str = "$__rate_interval") -> str:
    """How much a counter grew over the window, summed by the given labels."""
    return f"sum by ({by}) (increase({sel(metric, INST)}[{window}]))"


def _status(grid: Grid) -> None:
    """Ready, channels, topics, capacity, version, token."""
    grid.section("Status")
    grid.add(
        stat(
            "Scraped",
            [query(f"{sel('up', INST)}", instant=True)],
            description="Whether Prometheus can scrape the monitor's /metrics.",
            mappings=UP_DOWN,
            size=(3, 4),
        ),
        stat(
            "Ready",
            [query(sel("monitor_ready", INST), instant=True)],
            description="1 once every channel is subscribed and its agents read by snapshot.",
            mappings=value_mappings(
                {0: "NOT READY", 1: "READY"}, {"NOT READY": "red", "READY": "green"}
            ),
            size=(3, 4),
        ),
        stat(
            "Channels up / planned",
            [
                query(f"sum({sel('monitor_channel_up', INST)})", "up", instant=True),
                query(f"count({sel('monitor_channel_up', INST)})", "planned", instant=True),
            ],
            description="Notification channels connected, subscribed and reconciled, out of "
            "those the pool needs (at most 20 per OAuth client).",
            size=(4, 4),
        ),
        stat(
            "Topics subscribed",
            [query(sel("monitor_topics_subscribed", INST), instant=True)],
            description="Topics subscribed over all channels (one per agent with combined topics).",
            size=(3, 4),
        ),
        stat(
            "Topics rejected",
            [query(sel("monitor_topics_rejected", INST), instant=True)],
            description="Topics Genesys refused (usually a missing permission or division).",
            steps=BAD_IF_POSITIVE,
            size=(3, 4),
        ),
        stat(
            "Agents not watched",
            [query(sel("monitor_agents_unwatched", INST), instant=True)],
            description="Selected agents that do not fit in the configured OAuth clients' "
            "channels; see OAuth clients needed.",
            steps=BAD_IF_POSITIVE,
            size=(3, 4),
        ),
        stat(
            "OAuth clients needed",
            [query(sel("monitor_oauth_clients_needed", INST), instant=True)],
            description="OAuth clients needed to watch every selected agent.",
            size=(3, 4),
        ),
        stat(
            "Version",
            [query(sel("monitor_build_info", INST), "{{version}}", instant=True)],
            description="The monitor's version.",
            text_mode="name",
            size=(3, 4),
        ),
        stat(
            "Token expires in",
            [
                query(
                    f"min({sel('monitor_token_expiry_timestamp_seconds', INST)}) - time()",
                    instant=True,
                )
            ],
            description="Time left on the OAuth token closest to expiry. The monitor refreshes "
            "tokens before they expire; a value running down to 0 means refreshing fails.",
            unit="s",
            steps=thresholds((None, "red"), (600, "orange"), (1800, "green")),
            size=(4, 4),
        ),
        stat(
            "Watched agents",
            [query(sel("genesys_agents_watched", INST), instant=True)],
            description="Agents in the watched roster.",
            size=(3, 4),
        ),
    )


def _channels(grid: Grid) -> None:
    """Channel slots up, heartbeat age, reconnects and rollovers, topics, gaps."""
    grid.section("Channels")
    grid.add(
        state_timeline(
            "Channel up",
            [query(sel("monitor_channel_up", INST), "client {{client}} slot {{slot}}")],
            description="Each channel slot: up when its socket is connected, subscribed and "
            "reconciled.",
            mappings=UP_DOWN,
            size=(12, 8),
        ),
        timeseries(
            "Heartbeat age",
            [
                query(
                    f"time() - {sel('monitor_channel_last_frame_timestamp_seconds', INST)}",
                    "client {{client}} slot {{slot}}",
                )
            ],
            description="Time since the last frame (event, heartbeat or pong) on each channel. "
            "Genesys sends a heartbeat about every 30 s; the monitor pings a quiet socket.",
            unit="s",
        ),
        timeseries(
            "Reconnects and rollovers",
            [
                query(
                    increase("monitor_channel_reconnects_total", "reason"), "reconnect: {{reason}}"
                ),
                query(
                    increase("monitor_channel_rollovers_total", "reason"), "rollover: {{reason}}"
                ),
            ],
            description="Sockets reopened after an unplanned loss, and planned replacements "
            "(socket_closing, channel expiry, new token).",
            bars=True,
            size=(8, 8),
        ),
        timeseries(
            "Topics",
            [
                query(sel("monitor_topics_subscribed", INST), "subscribed"),
                query(sel("monitor_topics_rejected", INST), "rejected"),
            ],
            description="Topics subscribed and rejected over time.",
            overrides=[field_override("rejected", color={"fixedColor": "red", "mode": "fixed"})],
            size=(8, 8),
        ),
        timeseries(
            "Gaps and snapshots",
            [
                query(
                    f"sum(increase({sel('monitor_gaps_total', INST)}[$__rate_interval]))", "gaps"
                ),
                query(
                    f"sum(increase({sel('monitor_snapshots_total', INST)}[$__rate_interval]))",
                    "snapshots",
                ),
                query(
                    f"sum(increase({sel('monitor_gap_seconds_total', INST)}[$__rate_interval]))",
                    "gap seconds",
                ),
            ],
            description="Intervals in which a channel was not delivering, their total length, "
            "and the snapshots read to fill them.",
            bars=True,
            overrides=[
                field_override("gap seconds", unit="s", **{"custom.axisPlacement": "right"})
            ],
            size=(8, 8),
        ),
    )


def _events(grid: Grid) -> None:
    """Transitions, frames and dropped updates per second; event lag; event-loop lag."""
    grid.section("Events")
    grid.add(
        timeseries(
            "Transitions per second",
            [query(rate("genesys_transitions_total", "kind, source"), "{{kind}} ({{source}})")],
            description="Recorded transitions by kind and source: live (websocket), snapshot "
            "(REST read after a gap), backfill.",
            unit="ops",
        ),
        timeseries(
            "Frames per second",
            [query(rate("monitor_frames_received_total", "frame"), "{{frame}}")],
            description="Websocket frames received, by what they held.",
            unit="ops",
        ),
        timeseries(
            "Updates dropped per second",
            [query(rate("monitor_updates_dropped_total", "reason"), "{{reason}}")],
            description="Updates that changed nothing: duplicates, and stale (older than what "
            "is known). Many duplicates are normal around rollovers.",
            unit="ops",
            size=(8, 8),
        ),
        timeseries(
            "Event lag",
            histogram_quantiles("monitor_event_lag_seconds", (0.5, 0.9, 0.99)),
            description="From a live event's own timestamp to its arrival at the monitor.",
            unit="s",
            size=(8, 8),
        ),
        timeseries(
            "Event-loop lag",
            histogram_quantiles("monitor_event_loop_lag_seconds", (0.5, 0.99)),
            description="How late the monitor's event loop woke a timer, four times a second: "
            "how long other work held up frames, scrapes and health checks. Stalls of a second "
            "or more are logged (event_loop_blocked); repeated ones alert as "
            "GenesysMonitorStalling.",
            unit="s",
            size=(8, 8),
        ),
    )


def _genesys_api(grid: Grid) -> None:
    """REST requests, errors and 429s, durations."""
    grid.section("Genesys API")
    grid.add(
        timeseries(
            "Requests per second by route",
            [query(rate("monitor_api_requests_total", "route"), "{{route}}")],
            description="Genesys REST requests. Genesys allows 300 a minute per token.",
            unit="reqps",
            size=(8, 8),
        ),
        timeseries(
            "Errors per second",
            [
                query(rate("monitor_api_errors_total", "route, status"), "{{route}} {{status}}"),
                query(rate("monitor_api_rate_limited_total"), "429 (rate limited)"),
            ],
            description="Failed REST requests by route and HTTP status (0: network), and 429 "
            "answers: the monitor then waits out Retry-After for the whole token.",
            unit="reqps",
            size=(8, 8),
        ),
        timeseries(
            "Request duration",
            histogram_quantiles("monitor_api_request_duration_seconds"),
            description="Genesys REST request durations.",
            unit="s",
            size=(8, 8),
        ),
    )


def _writer(grid: Grid) -> None:
    """The database writer: queue, batch commit time, rows written."""
    grid.section("Database writer")
    grid.add(
        timeseries(
            "Writer queue",
            [query(sel("monitor_writer_queue_depth", INST), "queued")],
            description="Transitions waiting to be written. A growing queue means the disk "
            "cannot keep up; a full one slows the channels down (nothing is dropped).",
            size=(8, 8),
        ),
        timeseries(
            "Batch commit time",
            histogram_quantiles("monitor_db_write_batch_duration_seconds"),
            description="Time to commit one batch of transitions to SQLite.",
            unit="s",
            size=(8, 8),
        ),
        timeseries(
            "Rows written per second",
            [query(rate("monitor_transitions_written_total"), "transitions")],
            description="Transitions committed to the database.",
            unit="ops",
            size=(8, 8),
        ),
    )


def _actions(grid: Grid) -> None:
    """Presence changes, schedule runs and stuck-rule firings over the time range."""
    grid.section("Actions and schedules (over the dashboard's time range)")
    grid.add(
        table(
            "Presence changes",
            [
                query(
                    increase("monitor_presence_changes_total", "actor, outcome", "$__range"),
                    table=True,
                )
            ],
            description="Agents handled by presence changes, by who asked (cli, http, "
            "schedule, rule) and outcome.",
            columns={"actor": "Asked by", "outcome": "Outcome", "Value": "Agents"},
            sort_by="Agents",
            overrides=[field_override("Agents", decimals=0)],
            size=(8, 8),
        ),
        table(
            "Schedule runs",
            [
                query(increase("monitor_schedule_runs_total", "schedule", "$__range"), table=True),
                query(
                    increase("monitor_schedule_run_failures_total", "schedule", "$__range"),
                    table=True,
                ),
                query(
                    increase("monitor_schedule_agents_changed_total", "schedule", "$__range"),
                    table=True,
                ),
                query(
                    f"max by (schedule) ({sel('monitor_schedule_last_run_timestamp_seconds', INST)})"
                    " * 1000",
                    table=True,
                ),
                query(
                    f"max by (schedule) ({sel('monitor_schedule_next_run_timestamp_seconds', INST)})"
                    " * 1000",
                    table=True,
                ),
            ],
            description="Runs of each schedule in the time range, failed runs, agents changed, "
            "and the last and next run.",
            columns={
                "schedule": "Schedule",
                "Value #A": "Runs",
                "Value #B": "Failed",
                "Value #C": "Agents changed",
                "Value #D": "Last run",
                "Value #E": "Next run",
            },
            sort_by="Runs",
            overrides=[
                field_override("Runs", decimals=0),
                field_override("Failed", decimals=0),
                field_override("Agents changed", decimals=0),
                field_override("Last run", unit="dateTimeFromNow"),
                field_override("Next run", unit="dateTimeFromNow"),
            ],
            size=(10, 8),
        ),
        bargauge(
            "Stuck-rule firings",
            [
                query(
                    increase("monitor_rule_firings_total", "rule", "$__range"),
                    "{{rule}}",
                    instant=True,
                )
            ],
            description="Times each stuck-agent rule fired in the time range.",
            size=(6, 8),
        ),
    )


def monitor_health() -> Json:
    grid = Grid()
    _status(grid)
    _channels(grid)
    _events(grid)
    _genesys_api(grid)
    _writer(grid)
    _actions(grid)
    return dashboard(
        uid="genesys-monitor-health",
        title="Genesys monitor health",
        description="The monitor itself: channels, topics, heartbeats, reconnects, events, lag, "
        "gaps, Genesys API requests and 429s, the database writer, tokens, actions, schedules.",
        variables=[datasource_variable(), instance_variable()],
        grid=grid,
        time_from="now-6h",
    )
