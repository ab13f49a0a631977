"""The simulator's admin API under `/sim/`, on the REST port, without a token: inject faults,
read the ground truth and an agent's state, change agents (cause "admin"), hire and deactivate,
and read a summary of the whole simulator. JSON in and out, snake_case keys.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.core.model import Presence, RoutingStatus
from monitor.httpserver import HttpError, Request, Response, Router
from monitor.sim.frames import iso_ms
from monitor.sim.org import Change, SimAgent
from monitor.sim.rest_params import bad_request, int_arg, json_object, not_found

if TYPE_CHECKING:
    from monitor.sim.server import Simulator

CAUSE = "admin"
_TRUTH_PAGE = 10_000
# The facade methods reachable through POST /sim/faults/{name}.
FAULTS = (
    "drop_socket",
    "drop_all_sockets",
    "stop_heartbeats",
    "delay_frames",
    "duplicate_frames",
    "reorder_frames",
    "malformed_frames",
    "rate_limit_storm",
    "server_errors",
    "revoke_tokens",
    "expire_token",
    "socket_closing",
    "expire_channels",
)


def change_json(change: Change) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "agent_id": change.agent_id,
        "kind": change.kind.value,
        "value": change.value,
        "definition_id": change.definition_id,
        "event_ms": change.event_ms,
        "event_time": iso_ms(change.event_ms),
        "previous_value": change.previous_value,
        "previous_definition_id": change.previous_definition_id,
        "cause": change.cause,
    }


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether a JSON value fits a parameter annotation (bool, int, float, str, None, unions)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_accepts(member, value) for member in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return False


def call_with_json(method: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call a facade method with JSON arguments, checked against its signature: a 400 for a
    missing, unknown or mistyped argument, or for a value the method refuses (ValueError)."""
    signature = inspect.signature(method)
    try:
        bound = signature.bind(**args)
    except TypeError as exc:
        raise bad_request(f"bad arguments: {exc}") from None
    hints = typing.get_type_hints(method)
    for name, value in bound.arguments.items():
        if not _accepts(hints[name], value):
            raise bad_request(f"argument {name} must be {hints[name]}, not {value!r}")
    try:
        return method(**args)
    except (ValueError, KeyError) as exc:
        raise bad_request(f"refused: {exc}") from None


class AdminApi:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/sim/faults", self._fault_log)
        router.add("POST", "/sim/faults/{name}", self._inject)
        router.add("GET", "/sim/truth", self._truth)
        router.add("GET", "/sim/status", self._status)
        router.add("GET", "/sim/agents/{agent_id}", self._agent)
        router.add("POST", "/sim/agents/{agent_id}/presence", self._set_presence)
        router.add("POST", "/sim/agents/{agent_id}/routing", self._set_routing)
        router.add("POST", "/sim/roster/hire", self._hire)
        router.add("POST", "/sim/roster/deactivate", self._deactivate)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        return json_object(request) if request.body.strip() else {}

    def _agent_of(self, request: Request) -> SimAgent:
        agent = self._sim.org.agents.get(request.params["agent_id"])
        if agent is None:
            raise not_found(f"no agent {request.params['agent_id']}")
        return agent

    def agent_json(self, agent: SimAgent) -> dict[str, Any]:
        org = self._sim.org
        return {
            "id": agent.id,
            "name": agent.name,
            "email": agent.email,
            "state": agent.state,
            "division_id": agent.division_id,
            "queue_ids": list(agent.queue_ids),
            "presence": org.presence_of(agent).value,
            "definition_id": agent.presence_definition_id,
            "presence_message": agent.presence_message,
            "presence_since_ms": agent.presence_modified_ms,
            "routing_status": agent.routing_status.value,
            "routing_since_ms": agent.routing_start_ms,
        }

    # --- faults ---------------------------------------------------------------------------------

    async def _fault_log(self, request: Request) -> Response:
        log = self._sim.faults.log
        return Response.json(
            {"faults": [{"at_ms": r.at_ms, "name": r.name, "args": r.args} for r in log]}
        )

    async def _inject(self, request: Request) -> Response:
        name = request.params["name"]
        if name not in FAULTS:
            raise HttpError(404, f"no fault {name!r}; faults: {', '.join(FAULTS)}")
        result = call_with_json(getattr(self._sim, name), self._body(request))
        return Response.json({"fault": name, "result": result})

    # --- reading --------------------------------------------------------------------------------

    async def _truth(self, request: Request) -> Response:
        since = int_arg(request, "since_seq", 0, minimum=0)
        limit = min(int_arg(request, "limit", _TRUTH_PAGE), _TRUTH_PAGE)
        changes = self._sim.org.truth[since : since + limit]
        return Response.json(
            {
                "changes": [change_json(c) for c in changes],
                "next_seq": since + len(changes),
                "total": len(self._sim.org.truth),
            }
        )

    async def _agent(self, request: Request) -> Response:
        return Response.json(self.agent_json(self._agent_of(request)))

    async def _status(self, request: Request) -> Response:
        sim = self._sim
        org = sim.org
        agents = list(org.agents.values())
        active = [a for a in agents if a.state == "active"]
        return Response.json(
            {
                "agents": dict(Counter(a.state for a in agents), total=len(agents)),
                "presence": dict(Counter(org.presence_of(a).value for a in active)),
                "routing": dict(Counter(a.routing_status.value for a in active)),
                "clock": {
                    "now_ms": sim.clock.now_ms(),
                    "now": iso_ms(sim.clock.now_ms()),
                    "time_factor": sim.clock.factor,
                },
                "channels": sim.notifications.channel_ids(),
                "live_tokens": len(sim.tokens.live()),
                "truth": len(org.truth),
                "faults": len(sim.faults.log),
                "api_url": sim.api_url,
                "ws_port": sim.ws_port,
            }
        )

    # --- changing -------------------------------------------------------------------------------

    async def _set_presence(self, request: Request) -> Response:
        org = self._sim.org
        agent = self._agent_of(request)
        body = self._body(request)
        definition_id = body.get("definitionId")
        presence = body.get("presence")
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise bad_request("message must be a string")
        if isinstance(presence, str) and definition_id is None:
            try:
                definition_id = org.system_definition(Presence(presence.upper())).id
            except ValueError:
                raise bad_request(f"{presence!r} is not a system presence") from None
        if not isinstance(definition_id, str):
            raise bad_request('give "presence" (a system presence) or "definitionId"')
        if definition_id not in org.definitions:
            raise bad_request(f"no presence definition {definition_id}")
        try:
            changes = org.set_presence(agent.id, definition_id, cause=CAUSE, message=message)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return self._changed(agent, changes)

    async def _set_routing(self, request: Request) -> Response:
        agent = self._agent_of(request)
        body = self._body(request)
        status, force = body.get("status"), body.get("force", False)
        if not isinstance(force, bool):
            raise bad_request("force must be a boolean")
        try:
            routing = RoutingStatus(str(status).upper())
        except ValueError:
            raise bad_request(f"{status!r} is not a routing status") from None
        try:
            changes = self._sim.org.set_routing(agent.id, routing, cause=CAUSE, force=force)
        except ValueError as exc:
            raise bad_request(f"{exc} (pass force: true to allow it)") from None
        return self._changed(agent, changes)

    def _changed(self, agent: SimAgent, changes: list[Change]) -> Response:
        return Response.json(
            {"agent": self.agent_json(agent), "changes": [change_json(c) for c in changes]}
        )

    async def _hire(self, request: Request) -> Response:
        count = self._body(request).get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100_000:
            raise bad_request("count must be an integer from 0 to 100000")
        return Response.json({"hired": self._sim.hire(count)})

    async def _deactivate(self, request: Request) -> Response:
        agent_id = self._body(request).get("id")
        if not isinstance(agent_id, str) or agent_id not in self._sim.org.agents:
            raise not_found(f"no agent {agent_id!r}")
        self._sim.deactivate(agent_id)
        return Response.json(self.agent_json(self._sim.org.agents[agent_id]))
