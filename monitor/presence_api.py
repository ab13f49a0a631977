"""The action endpoint: `POST /api/v1/presence` changes presences on request.

Body (JSON object)::

    {"to": "Offline",                      # a system presence or an org's label, any locale
     "select": {"presence": ["On Queue"], "in_status_for": "10h", ...},   # required; {} = all
     "dry_run": false, "force": false, "max_agents": null, "requested_by": "jane"}

Answers: 200 with the outcome per agent; 400 malformed JSON or body; 401 no token; 403 wrong
token; 413 body too large; 422 unknown presence, bad selector, or over the cap; 503 while the
monitor is still starting, or when Genesys could not be asked. Nothing is changed unless the
answer is 200.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.actions import ActionRequest, ActionResult, ActionRunner
from monitor.core.selectors import Selector
from monitor.errors import ActionError, GenesysError
from monitor.http_auth import require_token
from monitor.httpserver import HttpError, Request, Response, Router

PATH = "/api/v1/presence"
_KEYS = {"to", "select", "dry_run", "force", "max_agents", "requested_by"}


def add_routes(router: Router, runner: ActionRunner, token: str, ready: Callable[[], bool]) -> None:
    async def change(request: Request) -> Response:
        require_token(request, token)
        body = request.json()
        action = _parse(body, f"http:{request.client.rsplit(':', 1)[0]}")
        if not ready():
            raise HttpError(503, "the monitor is still starting: no complete view of agents yet")
        try:
            result = await runner.run(action)
        except ActionError as exc:
            raise HttpError(422, str(exc), code="action.refused") from None
        except GenesysError as exc:
            # Nothing was changed: the request failed before any write (reading the presence
            # definitions or queue members), after the client's own retries.
            raise HttpError(
                503, f"Genesys did not answer: {exc}", code="genesys.unavailable"
            ) from None
        return Response.json(result_json(result))

    router.add("POST", PATH, change)


def _parse(body: Any, caller: str) -> ActionRequest:
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object", code="bad.request")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise HttpError(400, f"unknown field {unknown[0]!r}", code="bad.request")
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        raise HttpError(400, "'to' (the target presence) is required", code="bad.request")
    if "select" not in body or not isinstance(body["select"], dict):
        raise HttpError(
            400,
            "'select' is required: an object of selectors ({} for everyone)",
            code="bad.request",
        )
    try:
        selector = Selector.from_mapping(body["select"])
    except ValueError as exc:
        raise HttpError(422, f"select.{exc}", code="bad.selector") from None
    flags = {}
    for key in ("dry_run", "force"):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise HttpError(400, f"'{key}' must be true or false", code="bad.request")
        flags[key] = value
    max_agents = body.get("max_agents")
    if max_agents is not None and (
        isinstance(max_agents, bool) or not isinstance(max_agents, int) or max_agents < 1
    ):
        raise HttpError(400, "'max_agents' must be a positive whole number", code="bad.request")
    who = body.get("requested_by")
    if who is not None and (not isinstance(who, str) or not 0 < len(who) <= 100):
        raise HttpError(400, "'requested_by' must be a short text", code="bad.request")
    return ActionRequest(
        target=to.strip(),
        selector=selector,
        actor=f"{caller}:{who}" if who else caller,
        dry_run=flags["dry_run"],
        force=flags["force"],
        max_agents=max_agents,
    )


def result_json(result: ActionResult) -> dict[str, Any]:
    target = result.target
    return {
        "request_id": result.request_id,
        "dry_run": result.dry_run,
        "target": {
            "id": target.id,
            "system_presence": target.system_presence,
            "label": target.labels.get("en_US", next(iter(target.labels.values()), "")),
        },
        "counts": result.counts,
        "agents": [
            {
                "agent_id": o.agent_id,
                "name": o.name,
                "from": o.from_value,
                "outcome": o.outcome,
                **({"error": o.error} if o.error else {}),
            }
            for o in result.outcomes
        ],
    }
