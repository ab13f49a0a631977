"""Reading and checking the parameters and bodies of the simulator's REST requests.

Every problem is a 400 with a message that names the parameter, as Genesys answers, so that a
client bug shows up as a clear error rather than as a crash or a silently different result.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.httpserver import HttpError, Request
from monitor.sim.org import Org, SimAgent
from monitor.sim.settings import SimSettings

# Query parameters that are not repeated in a listing's URIs (the listing sets the paging ones).
_PAGING = frozenset({"pageSize", "pageNumber"})


def bad_request(message: str) -> HttpError:
    return HttpError(400, message, code="bad.request")


def not_found(message: str) -> HttpError:
    return HttpError(404, message, code="not.found")


def int_arg(request: Request, name: str, default: int, *, minimum: int = 1) -> int:
    """An integer query parameter of at least `minimum`."""
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise bad_request(f"{name} must be at least {minimum}, not {value}")
    return value


def choice_arg(request: Request, name: str, choices: Iterable[str], default: str) -> str:
    """A query parameter from a fixed set, compared case-insensitively; the canonical spelling."""
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise bad_request(f"{name} must be one of {', '.join(choices)}, not {raw!r}")


def bool_arg(request: Request, name: str, default: bool) -> bool:
    value = choice_arg(request, name, ("true", "false"), "true" if default else "false")
    return value == "true"


def sort_descending(request: Request) -> bool:
    """`sortOrder`: ascending/asc (default) or descending/desc, in any case."""
    value = choice_arg(
        request, "sortOrder", ("ascending", "descending", "asc", "desc"), "ascending"
    )
    return value in ("descending", "desc")


def other_query(request: Request) -> list[tuple[str, str]]:
    """The request's query parameters other than paging, for a listing's URIs."""
    return [
        (name, value)
        for name, values in request.query.items()
        if name not in _PAGING
        for value in values
    ]


def json_object(request: Request) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def json_list(request: Request) -> list[Any]:
    body = request.json()
    if not isinstance(body, list):
        raise bad_request("the request body must be a JSON array")
    return body


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise bad_request(f"{name} must be a string")


@dataclass(slots=True)
class RestContext:
    """What every REST handler reads: the org, the settings, and the source of the deliberate
    omission of expansions (seeded, so that a run can be repeated)."""

    org: Org
    settings: SimSettings
    expand_rng: random.Random = field(default_factory=random.Random)
    _by_name: list[SimAgent] = field(default_factory=list)

    @classmethod
    def create(cls, org: Org, settings: SimSettings) -> RestContext:
        # Drawn from the org's generator once, so expansions omitted in a run depend on the seed
        # and on the order of requests, and hiring stays independent of how often REST is used.
        return cls(org, settings, random.Random(org.rng.getrandbits(64)))

    def agent(self, agent_id: str) -> SimAgent:
        """The agent with this id, or a Genesys-shaped 404."""
        agent = self.org.agents.get(agent_id)
        if agent is None:
            raise not_found(f"user {agent_id} not found")
        return agent

    def agents_by_name(self) -> list[SimAgent]:
        """Every agent, in the order listings use: by name, then id."""
        # Agents are only ever added (deactivation is a state), so the count tells when the
        # cached order is stale; sorting 20,000 names on every page would dominate paging.
        if len(self._by_name) != len(self.org.agents):
            self._by_name = sorted(self.org.agents.values(), key=lambda a: (a.name.lower(), a.id))
        return self._by_name

    def expands(self, request: Request) -> tuple[bool, bool]:
        """Whether `presence` and `routingStatus` were asked for in `expand` (others are ignored)."""
        wanted = {value.lower() for value in request.args("expand")}
        return "presence" in wanted, "routingstatus" in wanted

    def best_effort(self, wanted: bool) -> bool:
        """Whether one asked-for expansion is delivered this time (`settings.expand_omit_rate`)."""
        rate = self.settings.expand_omit_rate
        return wanted and not (rate > 0 and self.expand_rng.random() < rate)
