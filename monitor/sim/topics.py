"""The topic grammar the simulator's notification service accepts.

Three user topics, `v2.users.{id}.presence`, `v2.users.{id}.routingStatus` and
`v2.users.{id}.activity`, and the combined form `v2.users.{id}?presence&routingStatus` that names
any of them at once. A combined topic counts as one topic towards a channel's limit, but its events
are delivered under the individual names (`v2.users.{id}.presence`), as Genesys does.

Matching is case-insensitive, because clients disagree on the case of `routingStatus` and Genesys's
own helpers compare lower-cased names; the names a client sees on its frames are spelt exactly as
it subscribed them, so it can look its handlers up by the name it chose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRESENCE = "presence"
ROUTING_STATUS = "routingStatus"
ACTIVITY = "activity"
SUFFIXES = (PRESENCE, ROUTING_STATUS, ACTIVITY)
_CANONICAL = {suffix.lower(): suffix for suffix in SUFFIXES}

_PREFIX = "v2.users."
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class TopicError(ValueError):
    """A topic name the simulator does not serve; the message says why."""


@dataclass(frozen=True, slots=True)
class UserTopic:
    """One subscribed topic of one agent.

    `parts` pairs each canonical suffix the topic covers with the name its events are delivered
    under: the topic itself for a single topic, `<prefix as written>.<suffix as written>` for a
    combined one.
    """

    name: str
    agent_id: str  # lower case, as the org spells user ids
    parts: tuple[tuple[str, str], ...]
    combined: bool


def parse_topic(name: str, *, max_combined_length: int) -> UserTopic:
    """Parse a topic name; TopicError when it is malformed, unknown or too long."""
    if not isinstance(name, str) or not name:
        raise TopicError("a topic must be a non-empty string")
    if name[: len(_PREFIX)].lower() != _PREFIX:
        raise TopicError(f"unknown topic {name!r}: only v2.users.{{id}} topics are served")
    rest = name[len(_PREFIX) :]
    head, question, query = rest.partition("?")
    if question:
        return _parse_combined(name, head, query, max_combined_length)
    agent, dot, suffix = head.partition(".")
    if not dot:
        raise TopicError(f"topic {name!r} names no event type")
    canonical = _CANONICAL.get(suffix.lower())
    if canonical is None:
        raise TopicError(f"unknown topic {name!r}: {suffix!r} is not one of {', '.join(SUFFIXES)}")
    return UserTopic(name, _agent_id(name, agent), ((canonical, name),), combined=False)


def _parse_combined(name: str, head: str, query: str, max_length: int) -> UserTopic:
    if len(name) > max_length:
        raise TopicError(
            f"combined topic {name[:40]!r}... is {len(name)} characters long; at most {max_length}"
        )
    agent_id = _agent_id(name, head)
    prefix = name[: len(_PREFIX) + len(head)]
    parts: list[tuple[str, str]] = []
    seen: set[str] = set()
    for suffix in query.split("&"):
        canonical = _CANONICAL.get(suffix.lower())
        if canonical is None:
            raise TopicError(
                f"combined topic {name!r}: {suffix!r} is not one of {', '.join(SUFFIXES)}"
            )
        # A repeated suffix names the same events again; they are delivered once.
        if canonical not in seen:
            seen.add(canonical)
            parts.append((canonical, f"{prefix}.{suffix}"))
    return UserTopic(name, agent_id, tuple(parts), combined=True)


def _agent_id(name: str, text: str) -> str:
    agent_id = text.lower()
    if not _UUID.match(agent_id):
        raise TopicError(f"topic {name!r}: {text!r} is not a user id")
    return agent_id
