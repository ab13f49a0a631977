"""The user search language of `POST /api/v2/users/search` (`UserSearchRequest`), in the subset
the simulator needs: EXACT, STARTS_WITH, CONTAINS and MATCH_ALL on a few fields, with AND, OR and
NOT operators and nested groups.

Criteria combine as Genesys's (Elasticsearch-like) boolean query: every AND criterion must match,
at least one OR criterion must match when there are any, and no NOT criterion may match.
Matching is case-insensitive. Without a criterion on `state`, only active users are found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.sim.org import SimAgent
from monitor.sim.rest_params import bad_request

Field = Callable[[SimAgent], str]
Predicate = Callable[[SimAgent], bool]

_FIELDS: dict[str, Field] = {
    "id": lambda a: a.id,
    "name": lambda a: a.name,
    "email": lambda a: a.email,
    "username": lambda a: a.email,
    "state": lambda a: a.state,
    "title": lambda a: a.title,
    "department": lambda a: a.department,
    "division.id": lambda a: a.division_id,
}
_TESTS: dict[str, Callable[[str, str], bool]] = {
    "EXACT": lambda have, want: have == want,
    "STARTS_WITH": lambda have, want: have.startswith(want),
    "CONTAINS": lambda have, want: want in have,
}
_OPERATORS = ("AND", "OR", "NOT")
_MAX_DEPTH = 5


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_request(f"{name} must be a string or a list of strings")


def _criterion(raw: Any, depth: int, fields_seen: set[str]) -> tuple[str, Predicate]:
    """One `UserSearchCriteria`: its operator and its predicate."""
    if not isinstance(raw, dict):
        raise bad_request("each query criterion must be a JSON object")
    operator = str(raw.get("operator") or "AND").upper()
    if operator not in _OPERATORS:
        raise bad_request(f"operator must be one of {', '.join(_OPERATORS)}, not {operator!r}")
    if raw.get("group") is not None:
        if not isinstance(raw["group"], list):
            raise bad_request("group must be a list of criteria")
        return operator, _combine(raw["group"], depth + 1, fields_seen)
    kind = str(raw.get("type") or "").upper()
    if kind == "MATCH_ALL":
        return operator, lambda agent: True
    test = _TESTS.get(kind)
    if test is None:
        supported = ", ".join([*_TESTS, "MATCH_ALL"])
        raise bad_request(f"search type {kind or '(none)'!r} is not supported; use {supported}")
    names = _strings(raw.get("fields"), "fields")
    if not names:
        raise bad_request("fields must name at least one field")
    getters = []
    for name in names:
        getter = _FIELDS.get(name)
        if getter is None:
            raise bad_request(f"field {name!r} cannot be searched; use {', '.join(_FIELDS)}")
        getters.append(getter)
        fields_seen.add(name)
    wanted = raw.get("values") if raw.get("values") is not None else raw.get("value")
    if wanted is None:
        raise bad_request(f"a {kind} criterion needs value or values")
    values = [v.lower() for v in _strings(wanted, "values")]

    def predicate(agent: SimAgent) -> bool:
        return any(test(get(agent).lower(), want) for get in getters for want in values)

    return operator, predicate


def _combine(raw: Any, depth: int, fields_seen: set[str]) -> Predicate:
    if depth > _MAX_DEPTH:
        raise bad_request(f"criteria groups nest at most {_MAX_DEPTH} deep")
    if not isinstance(raw, list):
        raise bad_request("query must be a list of criteria")
    parts = [_criterion(item, depth, fields_seen) for item in raw]
    must = [p for op, p in parts if op == "AND"]
    should = [p for op, p in parts if op == "OR"]
    must_not = [p for op, p in parts if op == "NOT"]

    def predicate(agent: SimAgent) -> bool:
        return (
            all(p(agent) for p in must)
            and (not should or any(p(agent) for p in should))
            and not any(p(agent) for p in must_not)
        )

    return predicate


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"{name} must be a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A checked `UserSearchRequest`."""

    predicate: Predicate
    page_size: int
    page_number: int
    sort_key: Field
    descending: bool
    presence: bool
    routing: bool

    @classmethod
    def parse(cls, body: dict[str, Any], *, max_page_size: int) -> SearchQuery:
        page_size = _int(body, "pageSize", 25)
        if page_size > max_page_size:
            raise bad_request(f"pageSize must be at most {max_page_size}, not {page_size}")
        fields_seen: set[str] = set()
        predicate = _combine(body.get("query") or [], 0, fields_seen)
        if "state" not in fields_seen:
            criteria = predicate

            def active_only(agent: SimAgent) -> bool:
                return agent.state == "active" and criteria(agent)

            predicate = active_only

        order = str(body.get("sortOrder") or "ASC").upper()
        if order not in ("ASC", "DESC", "SCORE"):
            raise bad_request(f"sortOrder must be ASC, DESC or SCORE, not {order!r}")
        sort_by = body.get("sortBy") or "name"
        if not isinstance(sort_by, str) or sort_by not in _FIELDS:
            raise bad_request(f"sortBy must be one of {', '.join(_FIELDS)}")
        expand = {e.lower() for e in _strings(body.get("expand") or [], "expand")}
        return cls(
            predicate=predicate,
            page_size=page_size,
            page_number=_int(body, "pageNumber", 1),
            sort_key=_FIELDS[sort_by],
            descending=order == "DESC",
            presence="presence" in expand,
            routing="routingstatus" in expand,
        )

    def run(self, agents_by_name: list[SimAgent]) -> list[SimAgent]:
        """The matching agents in the requested order (SCORE: by name, as every match scores
        the same here)."""
        matches = [a for a in agents_by_name if self.predicate(a)]
        if self.sort_key is not _FIELDS["name"]:
            matches.sort(key=lambda a: (self.sort_key(a).lower(), a.id))
        if self.descending:
            matches.reverse()
        return matches
