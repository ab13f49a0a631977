"""The vocabulary of the monitor as plain values: enums and frozen dataclasses.

Times are integer milliseconds since the Unix epoch (UTC) throughout the core. Genesys timestamps
carry millisecond precision, so integers keep equality exact, which the tracker and the store's
natural key depend on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Presence(StrEnum):
    """Genesys system presences, in the UPPER_SNAKE form that notifications use."""

    AVAILABLE = "AVAILABLE"
    AWAY = "AWAY"
    BUSY = "BUSY"
    OFFLINE = "OFFLINE"
    IDLE = "IDLE"
    ON_QUEUE = "ON_QUEUE"
    MEAL = "MEAL"
    TRAINING = "TRAINING"
    MEETING = "MEETING"
    BREAK = "BREAK"


class RoutingStatus(StrEnum):
    """Genesys routing statuses (the `RoutingStatus.status` enum of the REST and notification models)."""

    OFF_QUEUE = "OFF_QUEUE"
    IDLE = "IDLE"
    INTERACTING = "INTERACTING"
    NOT_RESPONDING = "NOT_RESPONDING"
    COMMUNICATING = "COMMUNICATING"


class Kind(StrEnum):
    """Which of an agent's two watched states an update or transition is about."""

    PRESENCE = "presence"
    ROUTING = "routing"


class Source(StrEnum):
    """Where a transition came from."""

    LIVE = "live"  # a notification frame
    SNAPSHOT = "snapshot"  # a REST read after a gap or at start
    BACKFILL = "backfill"  # history read afterwards (analytics)


_SEPARATORS = re.compile(r"[\s_\-]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_TOKEN = re.compile(r"^[A-Z][A-Z0-9_]*$")


def normalise_status(text: str) -> str:
    """Return the UPPER_SNAKE form of a presence or routing-status name.

    Genesys spells the same value several ways: `ON_QUEUE` in notifications, `OnQueue` in the
    presence definitions API, `On Queue` in some REST responses, `OffQueue` in the events API.
    Unknown values are kept (normalised), so a presence Genesys adds later is still recorded.
    Raises ValueError for text that cannot be a status name.
    """
    spaced = _CAMEL.sub("_", text.strip())
    value = _SEPARATORS.sub("_", spaced).upper()
    if not _TOKEN.match(value):
        raise ValueError(f"not a status name: {text!r}")
    return value


# Update and Transition are named tuples rather than frozen dataclasses: tens of thousands are
# made a second on the ingest path, and a tuple is built in a third of the time.
class Update(NamedTuple):
    """One presence or routing-status event for one agent, as decoded from a frame or a snapshot.

    `value` is the normalised system presence or routing status; `event_ms` is the event's own time
    (`modifiedDate` for presence, `startTime` for routing status); `definition_id` is the presence
    definition (secondary presence) id, None for routing status.
    """

    agent_id: str
    kind: Kind
    value: str
    event_ms: int
    definition_id: str | None = None


class Transition(NamedTuple):
    """A recorded change of one agent's presence or routing status.

    `from_value` is None for the first state ever seen for that agent and kind. A `late`
    transition arrived after a newer one (reordered delivery, or found by a snapshot): it belongs
    to the history at its event time but is not the agent's current state.
    """

    agent_id: str
    kind: Kind
    from_value: str | None
    to_value: str
    definition_id: str | None
    event_ms: int
    seen_ms: int
    source: Source
    late: bool = False


class StatusState(NamedTuple):
    """What we know of one agent's presence or routing status (a named tuple: the stuck rules
    read every agent's, every few seconds).

    `since_ms` is when the current value began; `watermark_ms` is the newest event time applied,
    so that older events can be recognised as stale even when they carried no change.
    """

    value: str
    definition_id: str | None
    since_ms: int
    watermark_ms: int


@dataclass(frozen=True, slots=True)
class Agent:
    """A Genesys user that the monitor watches, with what reports and labels need."""

    id: str
    name: str
    email: str = ""
    division_id: str = ""
    division_name: str = ""
    department: str = ""
    manager_id: str = ""
    queue_ids: tuple[str, ...] = field(default_factory=tuple)
    state: str = "active"


@dataclass(frozen=True, slots=True)
class Gap:
    """An interval in which a channel (or the whole monitor, channel "*") was not delivering, and
    why. `agents` are the agents it concerns; empty means every agent."""

    channel_id: str
    start_ms: int
    end_ms: int
    reason: str
    agents: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One audited presence change of one agent, asked for by someone or something.

    `actor` names who asked: `cli:<user>`, `http:<caller>`, `schedule:<name>`, `rule:<name>`.
    `outcome` is what happened: `changed`, `would_change` (a dry run), `skipped_already`,
    `skipped_interacting`, or `failed` (with `error`). `event_ms` is the time Genesys gave the
    resulting presence, which is also the event time of the transition the change causes.
    """

    at_ms: int
    actor: str
    agent_id: str
    from_value: str | None
    to_value: str
    definition_id: str
    dry_run: bool
    outcome: str
    request_id: str
    error: str = ""
    event_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PresenceDefinitionInfo:
    """A presence definition of the org: a system presence, or a secondary one the org defined.

    Lives in the core (not with the REST payloads) so that the pure presence-name resolution can
    use it; the Genesys payload parser builds it.
    """

    id: str
    system_presence: str  # normalised: ON_QUEUE, AVAILABLE, ...
    labels: Mapping[str, str]  # locale -> label
    system: bool  # a system definition, not an org-defined secondary presence
    deactivated: bool = False
