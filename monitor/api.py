"""The read-only JSON API on the daemon's HTTP listener.

    GET /api/v1/agents                     current state of every watched agent; filters
                                           ?division= ?queue= ?presence= ?routing_status=
                                           (each repeatable or comma-separated, names in any case)
    GET /api/v1/agents/{id}                one agent
    GET /api/v1/agents/{id}/timeline       ?from=&to=&tz= intervals, actions and gaps
    GET /api/v1/reports/status-time        ?from=&to=&by=&tz= as `monitor report status-time`

Protected by the same optional bearer token as the action endpoint (http_auth). Errors are JSON
(`{"error": message, "code": ...}`): 400 for a bad date or argument, 404 for an unknown agent.
`from`/`to` are local dates (YYYY-MM-DD, in `tz`, the day included) or ISO date-times with an
offset or Z; `tz` defaults to the configured actions.timezone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from monitor.core.model import Agent, Kind, StatusState, normalise_status
from monitor.core.statustime import day_start_ms
from monitor.core.timefmt import format_iso_ms, parse_iso_ms
from monitor.http_auth import require_token
from monitor.httpserver import HttpError, Request, Response, Router
from monitor.report_format import status_time_json, timeline_json
from monitor.store import Store
from monitor.store.agent_day import UnknownAgent, agent_timeline
from monitor.store.report_reads import MAX_DAYS, time_zone
from monitor.store.reports import check_by, status_time

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from monitor.core.model import Transition
    from monitor.service import Daemon

PREFIX = "/api/v1"


class AgentView(Protocol):
    """What the API reads: the watched agents, their state, and the history."""

    token: str  # the bearer token; "" for none
    timezone: str  # default zone of dates in reports

    @property
    def store(self) -> Store: ...

    def agents(self) -> Sequence[Agent]:
        """The agents watched now (the roster)."""
        ...

    def state(self, agent_id: str, kind: Kind) -> StatusState | None: ...

    def stuck_rules(self, agent_id: str) -> list[str]:
        """Names of the stuck-agent rules firing for the agent."""
        ...

    def now_ms(self) -> int: ...


class DaemonView:
    """An AgentView (and the wallboard's LiveView) of a running service.Daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self._d = daemon
        self.token = daemon.settings.http.token
        self.timezone = daemon.settings.actions.timezone

    @property
    def store(self) -> Store:
        return self._d.store

    def agents(self) -> Sequence[Agent]:
        return self._d.roster

    def state(self, agent_id: str, kind: Kind) -> StatusState | None:
        return self._d.tracker.state(agent_id, kind)

    def stuck_rules(self, agent_id: str) -> list[str]:
        # The rule engine runs beside the daemon's other loops once it is ready.
        stuck = getattr(self._d, "stuck", None)
        return list(stuck.firing_for(agent_id)) if stuck is not None else []

    def now_ms(self) -> int:
        return self._d.clock.now_ms()

    def listen(self, listener: Callable[[Transition], None]) -> Callable[[], None]:
        return self._d.recorder.listen(listener)


# --- agents and filters -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentFilter:
    """Which agents a request asks for; an empty set means any."""

    divisions: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    presences: frozenset[str] = frozenset()
    routing: frozenset[str] = frozenset()

    @classmethod
    def from_request(cls, request: Request, *, states: bool = True) -> AgentFilter:
        """From ?division=&queue= (and ?presence=&routing_status= when `states`)."""

        def statuses(name: str) -> frozenset[str]:
            try:
                return frozenset(normalise_status(value) for value in request.args(name))
            except ValueError as exc:
                raise HttpError(400, f"{name}: {exc}", code="bad.request") from None

        return cls(
            divisions=frozenset(v.casefold() for v in request.args("division")),
            queues=frozenset(v.casefold() for v in request.args("queue")),
            presences=statuses("presence") if states else frozenset(),
            routing=statuses("routing_status") if states else frozenset(),
        )

    def admits(self, agent: Agent, presence: str | None, routing: str | None) -> bool:
        if (
            self.divisions
            and not {
                agent.division_id.casefold(),
                agent.division_name.casefold(),
            }
            & self.divisions
        ):
            return False
        if self.queues and not {q.casefold() for q in agent.queue_ids} & self.queues:
            return False
        if self.presences and presence not in self.presences:
            return False
        return not (self.routing and routing not in self.routing)

    def query(self) -> dict[str, list[str]]:
        """The filter as query parameters (for links)."""
        return {"division": sorted(self.divisions), "queue": sorted(self.queues)}


def agent_json(view: AgentView, agent: Agent, now_ms: int) -> dict[str, Any]:
    """An agent with its current presence and routing status and the rules firing for it."""

    def status(kind: Kind) -> dict[str, Any] | None:
        known = view.state(agent.id, kind)
        if known is None:
            return None
        shown: dict[str, Any] = {
            "status": known.value,
            "since": format_iso_ms(known.since_ms),
            "seconds": round(max(0, now_ms - known.since_ms) / 1000, 3),
        }
        if kind is Kind.PRESENCE:
            shown["definition_id"] = known.definition_id
        return shown

    return {
        "id": agent.id,
        "name": agent.name,
        "email": agent.email,
        "division": {"id": agent.division_id, "name": agent.division_name},
        "queues": list(agent.queue_ids),
        "presence": status(Kind.PRESENCE),
        "routing_status": status(Kind.ROUTING),
        "stuck": view.stuck_rules(agent.id),
    }


def _value(view: AgentView, agent_id: str, kind: Kind) -> str | None:
    known = view.state(agent_id, kind)
    return None if known is None else known.value


# --- dates ----------------------------------------------------------------------------------------


def _zone(request: Request, view: AgentView) -> tuple[str, ZoneInfo]:
    name = request.arg("tz") or view.timezone
    try:
        return name, time_zone(name)
    except ValueError as exc:
        raise HttpError(400, str(exc), code="bad.request") from None


def _day(request: Request, name: str) -> date | None:
    text = request.arg(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HttpError(
            400, f"{name}: not a date (YYYY-MM-DD): {text!r}", code="bad.request"
        ) from None


def _instant(request: Request, name: str, zone: ZoneInfo, *, end: bool) -> int | None:
    """A date (its local start, or for an `end` the start of the next day) or an ISO time."""
    text = request.arg(name)
    if not text:
        return None
    if len(text) == 10:
        day = _day(request, name)
        assert day is not None
        return day_start_ms(day + timedelta(days=1) if end else day, zone)
    try:
        return parse_iso_ms(text)
    except ValueError:
        raise HttpError(
            400, f"{name}: not a date or ISO date-time: {text!r}", code="bad.request"
        ) from None


# --- routes ---------------------------------------------------------------------------------------


def add_routes(router: Router, view: AgentView) -> None:
    """Mount the API on `router`."""

    def agent_or_404(agent_id: str) -> Agent:
        for agent in view.agents():
            if agent.id == agent_id:
                return agent
        raise HttpError(404, f"no agent {agent_id!r} is watched", code="not.found")

    async def agents(request: Request) -> Response:
        require_token(request, view.token)
        wanted = AgentFilter.from_request(request)
        now = view.now_ms()
        shown = [
            agent_json(view, agent, now)
            for agent in view.agents()
            if wanted.admits(
                agent, _value(view, agent.id, Kind.PRESENCE), _value(view, agent.id, Kind.ROUTING)
            )
        ]
        body = {"generated_at": format_iso_ms(now), "count": len(shown), "agents": shown}
        return Response.json(body)

    async def one_agent(request: Request) -> Response:
        require_token(request, view.token)
        agent = agent_or_404(request.params["id"])
        return Response.json(agent_json(view, agent, view.now_ms()))

    async def timeline(request: Request) -> Response:
        require_token(request, view.token)
        name, zone = _zone(request, view)
        now = view.now_ms()
        start = _instant(request, "from", zone, end=False)
        end = _instant(request, "to", zone, end=True)
        if start is None:
            start = day_start_ms(datetime.fromtimestamp(now / 1000, zone).date(), zone)
        if end is None:
            # A day asked for is the whole day; otherwise up to now.
            whole_day = len(request.arg("from") or "") == 10
            end = _instant(request, "from", zone, end=True) if whole_day else None
            end = max(now, start + 1) if end is None else end
        if end <= start:
            raise HttpError(400, "to must be after from", code="bad.request")
        try:
            found = await agent_timeline(view.store, request.params["id"], start, end, now)
        except UnknownAgent as exc:
            raise HttpError(404, str(exc.args[0]), code="not.found") from None
        except ValueError as exc:
            raise HttpError(400, str(exc), code="bad.request") from None
        return Response.json(timeline_json(found, name))

    async def report(request: Request) -> Response:
        require_token(request, view.token)
        name, _ = _zone(request, view)
        first = _day(request, "from")
        if first is None:
            raise HttpError(400, "from (YYYY-MM-DD) is required", code="bad.request")
        last = _day(request, "to") or first
        if last < first:
            raise HttpError(400, "to is before from", code="bad.request")
        if (last - first).days >= MAX_DAYS:
            raise HttpError(400, f"a report covers at most {MAX_DAYS} days", code="bad.request")
        try:
            by = check_by(request.args("by") or ["agent"])
            found = await status_time(view.store, first, last, name, view.now_ms(), by)
        except ValueError as exc:
            raise HttpError(400, str(exc), code="bad.request") from None
        return Response.json(status_time_json(found))

    router.add("GET", f"{PREFIX}/agents", agents)
    router.add("GET", f"{PREFIX}/agents/{{id}}", one_agent)
    router.add("GET", f"{PREFIX}/agents/{{id}}/timeline", timeline)
    router.add("GET", f"{PREFIX}/reports/status-time", report)


def mount(daemon: Daemon) -> DaemonView:
    """Mount the API on a daemon's listener; returns the view it reads through."""
    view = DaemonView(daemon)
    add_routes(daemon.web.router, view)
    return view
