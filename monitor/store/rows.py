"""Conversions between the model's values and the store's rows, and the checks on the way in.

Checking a transition before it is queued or written keeps one bad value from failing a whole
batch at commit time, where it would be retried over and over and hold everything behind it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict

from monitor.core.model import Agent, Gap, Kind, Source, StatusState, Transition
from monitor.store.batch_write import WireRow

# SQLite integers are signed 64-bit.
_MAX_MS = 2**63 - 1

# One exported transition; times are ISO-8601 UTC with milliseconds. "from" is a Python keyword,
# hence the functional form.
ExportRow = TypedDict(
    "ExportRow",
    {
        "agent_id": str,
        "kind": str,
        "from": str | None,
        "to": str,
        "presence_definition_id": str | None,
        "event_time": str,
        "seen_time": str,
        "source": str,
    },
)

EXPORT_COLUMNS = (
    "agent_id",
    "kind",
    "from",
    "to",
    "presence_definition_id",
    "event_time",
    "seen_time",
    "source",
)


def _check_ms(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= _MAX_MS:
        raise ValueError(
            f"{name} must be a non-negative integer of epoch milliseconds, not {value!r}"
        )


def _check_text(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {value!r}")


def check_transition(transition: object) -> Transition:
    """Return `transition` if it can be stored; raise ValueError naming the bad field otherwise."""
    t = transition
    # Every transition is checked on its way in (thousands a second): one expression settles
    # the usual case; the field-by-field checks below only name what is wrong.
    if (
        type(t) is Transition
        and type(t.agent_id) is str
        and t.agent_id
        and type(t.to_value) is str
        and t.to_value
        and (t.from_value is None or (type(t.from_value) is str and t.from_value))
        and (t.definition_id is None or (type(t.definition_id) is str and t.definition_id))
        and type(t.kind) is Kind
        and type(t.source) is Source
        and type(t.event_ms) is int
        and 0 <= t.event_ms <= _MAX_MS
        and type(t.seen_ms) is int
        and 0 <= t.seen_ms <= _MAX_MS
        and type(t.late) is bool
    ):
        return t
    if not isinstance(transition, Transition):
        raise ValueError(f"expected a Transition, not {type(transition).__name__}")
    _check_text("agent_id", transition.agent_id)
    if not isinstance(transition.kind, Kind):
        raise ValueError(f"kind must be a Kind, not {transition.kind!r}")
    if not isinstance(transition.source, Source):
        raise ValueError(f"source must be a Source, not {transition.source!r}")
    _check_text("from_value", transition.from_value, optional=True)
    _check_text("to_value", transition.to_value)
    _check_text("definition_id", transition.definition_id, optional=True)
    _check_ms("event_ms", transition.event_ms)
    _check_ms("seen_ms", transition.seen_ms)
    if not isinstance(transition.late, bool):
        raise ValueError(f"late must be a bool, not {transition.late!r}")
    return transition


class Checked(list[Transition]):
    """Transitions that have passed check_transition: a batch made of them need not be checked
    again (the writer's batches, whose every transition was checked as it was queued)."""

    __slots__ = ()


def check_transitions(transitions: Sequence[object]) -> Checked:
    """Check every transition of a batch, naming the position of the first bad one."""
    if type(transitions) is Checked:
        return transitions
    checked = Checked()
    for position, transition in enumerate(transitions):
        try:
            checked.append(check_transition(transition))
        except ValueError as exc:
            raise ValueError(f"transition {position}: {exc}") from None
    return checked


def check_gap(gap: object) -> Gap:
    """Return `gap` if it can be stored; raise ValueError otherwise."""
    if not isinstance(gap, Gap):
        raise ValueError(f"expected a Gap, not {type(gap).__name__}")
    _check_text("channel_id", gap.channel_id)
    _check_ms("start_ms", gap.start_ms)
    _check_ms("end_ms", gap.end_ms)
    if gap.end_ms < gap.start_ms:
        raise ValueError(f"gap ends ({gap.end_ms}) before it starts ({gap.start_ms})")
    if not isinstance(gap.reason, str):
        raise ValueError(f"reason must be a string, not {gap.reason!r}")
    if not isinstance(gap.agents, tuple) or not all(isinstance(a, str) for a in gap.agents):
        raise ValueError("agents must be a tuple of agent ids")
    return gap


def check_agent(agent: object) -> Agent:
    """Return `agent` if it can be stored; raise ValueError otherwise."""
    if not isinstance(agent, Agent):
        raise ValueError(f"expected an Agent, not {type(agent).__name__}")
    _check_text("id", agent.id)
    for name in ("name", "email", "division_id", "division_name", "department", "manager_id"):
        if not isinstance(getattr(agent, name), str):
            raise ValueError(f"agent {agent.id}: {name} must be a string")
    _check_text("state", agent.state)
    if not all(isinstance(queue, str) for queue in agent.queue_ids):
        raise ValueError(f"agent {agent.id}: queue_ids must be strings")
    return agent


# The text that an enum member is stored as, and sent to the batch writer as: a plain str pickles
# faster than the str enum, and sqlite3 looks for an adapter on every enum value it binds.
_TEXT: dict[Kind | Source, str] = {member: member.value for member in (*Kind, *Source)}


def wire_rows(batch: Sequence[Transition]) -> list[WireRow]:
    """A checked batch as the batch writer process takes it (batch_write.WireRow)."""
    text = _TEXT
    return [
        (
            t.agent_id,
            text[t.kind],
            t.from_value,
            t.to_value,
            t.definition_id or "",
            t.event_ms,
            t.seen_ms,
            text[t.source],
            1 if t.late else 0,
        )
        for t in batch
    ]


def agent_row(agent: Agent, synced_ms: int) -> tuple[Any, ...]:
    """The agents row of `agent` (without its key)."""
    return (
        agent.id,
        agent.name,
        agent.email,
        agent.division_id,
        agent.division_name,
        agent.department,
        agent.manager_id,
        json.dumps(list(agent.queue_ids)),
        agent.state,
        synced_ms,
    )


def agent_from_row(row: Sequence[Any]) -> Agent:
    """An Agent from (id, name, email, division_id, division_name, department, manager_id,
    queue_ids, state)."""
    queues = json.loads(row[7])
    return Agent(
        id=row[0],
        name=row[1],
        email=row[2],
        division_id=row[3],
        division_name=row[4],
        department=row[5],
        manager_id=row[6],
        queue_ids=tuple(str(queue) for queue in queues),
        state=row[8],
    )


def state_from_row(value: str, definition_id: str, since_ms: int, watermark_ms: int) -> StatusState:
    """A StatusState from a current_state row."""
    return StatusState(
        value=value,
        definition_id=definition_id or None,
        since_ms=since_ms,
        watermark_ms=watermark_ms,
    )


def export_row(row: Sequence[Any]) -> ExportRow:
    """An export record from (agent id, kind, from, to, definition id, event time, seen time,
    source), the times already in ISO-8601 form."""
    return {
        "agent_id": row[0],
        "kind": row[1],
        "from": row[2],
        "to": row[3],
        "presence_definition_id": row[4] or None,
        "event_time": row[5],
        "seen_time": row[6],
        "source": row[7],
    }
