"""Every Prometheus metric of the monitor, and the exposition served on /metrics.

Two kinds of metrics live here:

- agent metrics (`genesys_*`): per-agent state and state-start timestamps, agent info, and the
  counts of agents per presence and routing status. At 20,000 agents the per-agent families are
  about 100,000 series, which prometheus-client renders at roughly 100,000 series a second: too
  slow for a scrape. So each agent's lines are kept pre-rendered and replaced when its state
  changes; a scrape only joins strings. Only the current state is exported per agent (a full
  state set would be 15 series per agent).
- the daemon's own health (`monitor_*`) and counters: plain prometheus-client metrics on an
  injected registry, rendered by the library.

Both halves go out in the classic text format (`text/plain; version=0.0.4`).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitor import __version__
from monitor.core.model import Agent, Kind, Source, StatusState, Transition
from monitor.metric_types import CounterChild, FastCounter, FastHistogram, HistogramChild

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Completed stretches in one status: a few seconds (not responding) to a whole shift.
_DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)


def escape(value: str) -> str:
    """A label value escaped for the text exposition format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# Line kind -> the per-agent family and its label for the value.
_STATE_FAMILIES = {
    "presence": ("genesys_agent_presence", "presence"),
    "routing": ("genesys_agent_routing_status", "routing_status"),
}


def _decrement(tally: Tally[tuple[str, str, str]], key: tuple[str, str, str]) -> None:
    tally[key] -= 1
    if tally[key] <= 0:
        del tally[key]


def _header(name: str, kind: str, help_text: str) -> bytes:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n".encode()


def _family(name: str, kind: str, help_text: str, lines: Iterable[str]) -> bytes:
    return _header(name, kind, help_text) + "".join(lines).encode()


def _agent_family(name: str, help_text: str, lines: Iterable[bytes]) -> bytes:
    # Joined as bytes, from lines kept encoded: no 100,000-line str to build and encode again.
    return _header(name, "gauge", help_text) + b"".join(lines)


class AgentMetrics:
    """The agent families, kept as pre-rendered lines per agent.

    A transition only records the agent's new state and marks the agent changed: the counts and
    the agent's lines are brought up to date at the next render, once per changed agent however
    many transitions it had. Thousands of transitions a second then cost a few dict writes each,
    and a scrape pays only for the agents that changed since the last one.
    """

    def __init__(self, *, per_agent: bool, by_division: bool, by_queue: bool) -> None:
        self.per_agent = per_agent
        self.by_division = by_division
        self.by_queue = by_queue
        self._agents: dict[str, Agent] = {}
        self._presence: dict[str, str] = {}
        self._routing: dict[str, str] = {}
        self._presence_since: dict[str, int] = {}
        self._routing_since: dict[str, int] = {}
        # Agents whose state or attributes changed since the last render.
        self._changed: set[str] = set()
        self._lines: dict[str, dict[str, bytes]] = {
            "presence": {},
            "routing": {},
            "presence_ts": {},
            "routing_ts": {},
            "info": {},
        }
        # (agent, rule) -> line, for the stuck-agent rules firing now.
        self._stuck: dict[tuple[str, str], bytes] = {}
        # Queue id -> name, when queues are read at all: lets dashboards show names.
        self._queues: dict[str, str] = {}
        # (presence, routing_status, division) -> agents; queue breakdown kept apart because an
        # agent in several queues counts in each, so summing over queues would double-count.
        self._counts: Tally[tuple[str, str, str]] = Tally()
        self._queue_counts: Tally[tuple[str, str, str]] = Tally()
        # What each agent is counted under now: its counts key and its queues.
        self._counted: dict[str, tuple[tuple[str, str, str], tuple[str, ...]]] = {}

    # --- updates ---------------------------------------------------------------------------------

    def set_agents(self, agents: Sequence[Agent]) -> None:
        """The watched roster: adds info for new agents and drops every series of departed ones."""
        current = {a.id: a for a in agents}
        known = self._agents.keys() | self._presence.keys() | self._routing.keys()
        for agent_id in [a for a in known if a not in current]:
            self._presence.pop(agent_id, None)
            self._routing.pop(agent_id, None)
            self._presence_since.pop(agent_id, None)
            self._routing_since.pop(agent_id, None)
            for key in [k for k in self._stuck if k[0] == agent_id]:
                del self._stuck[key]
            for table in self._lines.values():
                table.pop(agent_id, None)
            self._changed.add(agent_id)
        for agent in agents:
            if self._agents.get(agent.id) == agent:
                continue
            self._changed.add(agent.id)
            if self.per_agent:
                self._lines["info"][agent.id] = (
                    f'genesys_agent_info{{agent_id="{agent.id}",agent_name="{escape(agent.name)}",'
                    f'division="{escape(agent.division_name)}",'
                    f'department="{escape(agent.department)}"}} 1\n'
                ).encode()
        self._agents = current

    def set_state(self, agent_id: str, kind: Kind, value: str, since_ms: int) -> int | None:
        """The agent's current presence or routing status and since when; returns since when the
        previous one had lasted (None if there was none)."""
        if kind is Kind.PRESENCE:
            self._presence[agent_id] = value
            since = self._presence_since
        else:
            self._routing[agent_id] = value
            since = self._routing_since
        previous_since = since.get(agent_id)
        since[agent_id] = since_ms
        self._changed.add(agent_id)
        return previous_since

    def set_queue_names(self, names_by_id: Mapping[str, str]) -> None:
        self._queues = dict(names_by_id)

    def set_stuck(self, agent_id: str, rule: str, firing: bool) -> None:
        """A stuck-agent rule started or stopped firing for an agent."""
        if firing and self.per_agent:
            self._stuck[(agent_id, rule)] = (
                f'genesys_agent_stuck{{agent_id="{agent_id}",rule="{escape(rule)}"}} 1\n'
            ).encode()
        else:
            self._stuck.pop((agent_id, rule), None)

    @property
    def behind(self) -> int:
        """Agents changed since their counts and lines were last brought up to date."""
        return len(self._changed)

    def catch_up(self, limit: int | None = None) -> None:
        """Bring the counts and lines of changed agents up to date: every one, or at most
        `limit` of them (render() catches up with the rest)."""
        changed = self._changed
        agents: Iterable[str]
        if limit is not None and limit < len(changed):
            agents = [changed.pop() for _ in range(limit)]
        else:
            # The whole set is taken as it is: nothing adds to it while it is walked here.
            agents, self._changed = changed, set()
        for agent_id in agents:
            self._recount(agent_id)
            if self.per_agent:
                self._render_agent(agent_id)

    def _recount(self, agent_id: str) -> None:
        counted = self._counted.pop(agent_id, None)
        if counted is not None:
            key, queues = counted
            _decrement(self._counts, key)
            for queue in queues:
                _decrement(self._queue_counts, (key[0], key[1], queue))
        agent = self._agents.get(agent_id)
        presence = self._presence.get(agent_id)
        routing = self._routing.get(agent_id)
        if agent is None or (presence is None and routing is None):
            return
        key = (
            presence or "UNKNOWN",
            routing or "UNKNOWN",
            agent.division_name if self.by_division else "",
        )
        queues = tuple(agent.queue_ids) if self.by_queue else ()
        self._counts[key] += 1
        for queue in queues:
            self._queue_counts[(key[0], key[1], queue)] += 1
        self._counted[agent_id] = (key, queues)

    def _render_agent(self, agent_id: str) -> None:
        lines = self._lines
        for kind, values, since in (
            ("presence", self._presence, self._presence_since),
            ("routing", self._routing, self._routing_since),
        ):
            value = values.get(agent_id)
            if value is None:
                lines[kind].pop(agent_id, None)
                lines[f"{kind}_ts"].pop(agent_id, None)
                continue
            family, label = _STATE_FAMILIES[kind]
            lines[kind][agent_id] = (
                f'{family}{{agent_id="{agent_id}",{label}="{value}"}} 1\n'.encode()
            )
            lines[f"{kind}_ts"][agent_id] = (
                f'{family}_changed_timestamp_seconds{{agent_id="{agent_id}"}}'
                f" {since[agent_id] / 1000:.3f}\n"
            ).encode()

    # --- rendering -------------------------------------------------------------------------------

    def render(self) -> list[bytes]:
        """The agent families, one chunk each: a scrape of 20,000 agents never holds the whole
        exposition as one string (its peak would stay with the process as heap)."""
        self.catch_up()
        division = ',division="{}"' if self.by_division else ""
        parts = [
            _family(
                "genesys_agents",
                "gauge",
                "Watched agents per presence and routing status (UNKNOWN until first seen).",
                (
                    f'genesys_agents{{presence="{p}",routing_status="{r}"'
                    + (division.format(escape(d)) if division else "")
                    + f"}} {n}\n"
                    for (p, r, d), n in sorted(self._counts.items())
                ),
            ),
            _family(
                "genesys_agents_watched",
                "gauge",
                "Agents in the watched roster.",
                [f"genesys_agents_watched {len(self._agents)}\n"],
            ),
        ]
        if self._queues:
            parts.append(
                _family(
                    "genesys_queue_info",
                    "gauge",
                    "Queue names, for joins on queue_id; always 1.",
                    (
                        f'genesys_queue_info{{queue_id="{escape(q)}",queue_name="{escape(n)}"}} 1\n'
                        for q, n in sorted(self._queues.items())
                    ),
                )
            )
        if self.by_queue:
            parts.append(
                _family(
                    "genesys_queue_agents",
                    "gauge",
                    "Watched members of each queue per presence and routing status.",
                    (
                        f'genesys_queue_agents{{queue_id="{q}",presence="{p}",routing_status="{r}"}} {n}\n'
                        for (p, r, q), n in sorted(self._queue_counts.items())
                    ),
                )
            )
        if self.per_agent:
            lines = self._lines
            parts += [
                _agent_family(
                    "genesys_agent_presence",
                    "1 for the agent's current system presence (other presences are not exported).",
                    lines["presence"].values(),
                ),
                _agent_family(
                    "genesys_agent_presence_changed_timestamp_seconds",
                    "Unix time at which the agent's current presence began (event time).",
                    lines["presence_ts"].values(),
                ),
                _agent_family(
                    "genesys_agent_routing_status",
                    "1 for the agent's current routing status (other statuses are not exported).",
                    lines["routing"].values(),
                ),
                _agent_family(
                    "genesys_agent_routing_status_changed_timestamp_seconds",
                    "Unix time at which the agent's current routing status began (event time).",
                    lines["routing_ts"].values(),
                ),
                _agent_family(
                    "genesys_agent_info",
                    "Agent attributes, for joins on agent_id; always 1.",
                    lines["info"].values(),
                ),
                _agent_family(
                    "genesys_agent_stuck",
                    "1 while a stuck-agent rule is firing for the agent.",
                    self._stuck.values(),
                ),
            ]
        return parts


class Metrics:
    """All metrics of one daemon, on one registry."""

    def __init__(
        self,
        *,
        per_agent: bool = True,
        by: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        # A `_created` series per counter and histogram doubles their series for nothing.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.agents = AgentMetrics(
            per_agent=per_agent, by_division="division" in by, by_queue="queue" in by
        )
        r = self.registry
        self.build_info = Gauge(
            "monitor_build_info", "Version of the monitor; always 1.", ["version"], registry=r
        )
        self.build_info.labels(__version__).set(1)
        # The metrics that move with every frame or transition are the cheaper kind.
        self.transitions = FastCounter(
            "genesys_transitions_total",
            "Transitions recorded, by kind and source (live, snapshot, backfill).",
            ["kind", "source"],
            r,
        )
        self.status_duration = FastHistogram(
            "genesys_status_duration_seconds",
            "Completed stretches in one presence or routing status, by kind and status.",
            ["kind", "status"],
            r,
            _DURATION_BUCKETS,
        )
        self.frames = FastCounter(
            "monitor_frames_received_total",
            "Websocket frames received, by what they held.",
            ["frame"],
            r,
        )
        self.updates_dropped = Counter(
            "monitor_updates_dropped_total",
            "Updates that changed nothing: duplicates, and stale (older than what is known).",
            ["reason"],
            registry=r,
        )
        self.event_lag = FastHistogram(
            "monitor_event_lag_seconds",
            "Time from a live event (its own timestamp) to its arrival.",
            [],
            r,
            (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        ).labels()
        self.loop_lag = FastHistogram(
            "monitor_event_loop_lag_seconds",
            "How late the event loop woke a timer: how long other work held it up. Frames, "
            "scrapes and health checks wait as long.",
            [],
            r,
            (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ).labels()
        self.channel_up = Gauge(
            "monitor_channel_up",
            "1 when the channel slot's socket is connected, subscribed and reconciled.",
            ["client", "slot"],
            registry=r,
        )
        self.channel_last_frame = Gauge(
            "monitor_channel_last_frame_timestamp_seconds",
            "Unix time of the last frame (event, heartbeat or pong) on the channel slot.",
            ["client", "slot"],
            registry=r,
        )
        self.topics_subscribed = Gauge(
            "monitor_topics_subscribed", "Topics subscribed over all channels.", registry=r
        )
        self.topics_rejected = Gauge(
            "monitor_topics_rejected", "Topics Genesys refused to subscribe.", registry=r
        )
        self.reconnects = Counter(
            "monitor_channel_reconnects_total",
            "Sockets reopened after an unplanned loss.",
            ["reason"],
            registry=r,
        )
        self.rollovers = Counter(
            "monitor_channel_rollovers_total",
            "Planned replacements of a socket or channel (socket_closing, expiry, new token).",
            ["reason"],
            registry=r,
        )
        self.gaps = Counter(
            "monitor_gaps_total", "Intervals in which a channel was not delivering.", registry=r
        )
        self.gap_seconds = Counter(
            "monitor_gap_seconds_total", "Total length of the recorded gaps.", registry=r
        )
        self.snapshots = Counter(
            "monitor_snapshots_total", "Snapshots read to reconcile after a gap.", registry=r
        )
        self.api_requests = Counter(
            "monitor_api_requests_total", "Genesys REST requests, by route.", ["route"], registry=r
        )
        self.api_errors = Counter(
            "monitor_api_errors_total",
            "Genesys REST requests that failed, by route and HTTP status (0: network).",
            ["route", "status"],
            registry=r,
        )
        self.api_rate_limited = Counter(
            "monitor_api_rate_limited_total", "429 answers from Genesys.", registry=r
        )
        self.api_latency = Histogram(
            "monitor_api_request_duration_seconds",
            "Genesys REST request durations.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.token_expiry = Gauge(
            "monitor_token_expiry_timestamp_seconds",
            "Unix time at which the OAuth client's current token expires.",
            ["client"],
            registry=r,
        )
        self.writer_queue = Gauge(
            "monitor_writer_queue_depth", "Transitions waiting to be written.", registry=r
        )
        self.write_batches = Histogram(
            "monitor_db_write_batch_duration_seconds",
            "Time to commit one batch of transitions.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.rows_written = Counter(
            "monitor_transitions_written_total",
            "Transitions committed to the database.",
            registry=r,
        )
        self.agents_unwatched = Gauge(
            "monitor_agents_unwatched",
            "Selected agents that do not fit in the configured OAuth clients' channels.",
            registry=r,
        )
        self.clients_needed = Gauge(
            "monitor_oauth_clients_needed",
            "OAuth clients needed to watch every selected agent.",
            registry=r,
        )
        self.ready = Gauge(
            "monitor_ready", "1 once every channel is subscribed and reconciled.", registry=r
        )
        self.actions = Counter(
            "monitor_presence_changes_total",
            "Agents handled by presence-change requests, by who asked (cli, http, schedule, rule)"
            " and outcome (changed, would_change, skipped_already, skipped_interacting, failed).",
            ["actor", "outcome"],
            registry=r,
        )
        self.schedule_runs = Counter(
            "monitor_schedule_runs_total", "Scheduled runs started.", ["schedule"], registry=r
        )
        self.schedule_failures = Counter(
            "monitor_schedule_run_failures_total",
            "Scheduled runs that failed (refused, or an agent could not be changed).",
            ["schedule"],
            registry=r,
        )
        self.schedule_agents_changed = Counter(
            "monitor_schedule_agents_changed_total",
            "Agents whose presence scheduled runs changed.",
            ["schedule"],
            registry=r,
        )
        self.schedule_next_run = Gauge(
            "monitor_schedule_next_run_timestamp_seconds",
            "Unix time of the schedule's next run.",
            ["schedule"],
            registry=r,
        )
        self.schedule_last_run = Gauge(
            "monitor_schedule_last_run_timestamp_seconds",
            "Unix time of the schedule's last run.",
            ["schedule"],
            registry=r,
        )
        self._transition_counters: dict[tuple[Kind, Source], CounterChild] = {}
        self._duration_children: dict[tuple[Kind, str], HistogramChild] = {}
        # Counters appear at their first increment unless their labels are known up front; a
        # series that starts at 0 lets rate() and increase() see its first event.
        for reason in ("closed", "dead", "gone", "revoked"):
            self.reconnects.labels(reason)
        for reason in ("socket_closing", "expiry", "token"):
            self.rollovers.labels(reason)
        for reason in ("duplicate", "stale"):
            self.updates_dropped.labels(reason)
        for name in ("update", "heartbeat", "pong", "system", "invalid", "other"):
            self.frames.labels(name)
        for actor in ("http", "schedule", "rule"):
            for outcome in (
                "changed",
                "would_change",
                "skipped_already",
                "skipped_interacting",
                "failed",
            ):
                self.actions.labels(actor, outcome)
        self.agents_stuck = Gauge(
            "genesys_agents_stuck",
            "Agents for whom a stuck-agent rule is firing.",
            ["rule"],
            registry=r,
        )
        self.rule_firings = Counter(
            "monitor_rule_firings_total", "Times a stuck-agent rule fired.", ["rule"], registry=r
        )

    # --- agent state -----------------------------------------------------------------------------

    def load_states(self, states: Mapping[tuple[str, Kind], StatusState]) -> None:
        """State restored from the database at start, so time in status survives a restart."""
        for (agent_id, kind), state in states.items():
            self.agents.set_state(agent_id, kind, state.value, state.since_ms)

    def on_transition(self, transition: Transition) -> None:
        """A transition was recorded: move the agent's state and count it."""
        t = transition
        # Label lookups are cached: labels() costs more than the rest of a transition's metrics.
        key = (t.kind, t.source)
        counter = self._transition_counters.get(key)
        if counter is None:
            counter = self._transition_counters[key] = self.transitions.labels(t.kind, t.source)
        counter.inc()
        if t.late:
            return  # history, not the current state
        previous_since = self.agents.set_state(t.agent_id, t.kind, t.to_value, t.event_ms)
        if t.from_value is not None and previous_since is not None:
            seconds = (t.event_ms - previous_since) / 1000
            if seconds >= 0:
                duration_key = (t.kind, t.from_value)
                duration = self._duration_children.get(duration_key)
                if duration is None:
                    duration = self._duration_children[duration_key] = self.status_duration.labels(
                        t.kind, t.from_value
                    )
                duration.observe(seconds)

    # --- exposition ------------------------------------------------------------------------------

    def known_schedules(self, names: Sequence[str]) -> None:
        """Start every schedule's counters at 0."""
        for name in names:
            self.schedule_runs.labels(name)
            self.schedule_failures.labels(name)
            self.schedule_agents_changed.labels(name)

    def render(self) -> list[bytes]:
        """The exposition, in chunks to be sent one after another."""
        return [generate_latest(self.registry), *self.agents.render()]
