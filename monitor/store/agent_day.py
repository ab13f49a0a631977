"""One agent's presence and routing intervals over a window (a day), with actions and gaps."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosqlite

from monitor.core.model import Agent, Gap, Kind
from monitor.core.statustime import GapIndex
from monitor.core.timeline import Interval, intervals
from monitor.store import report_reads as reads
from monitor.store.database import scalar, translate
from monitor.store.report_reads import DAY_MS, MAX_DAYS
from monitor.store.rows import agent_from_row
from monitor.store.sqlite import Store


class UnknownAgent(LookupError):
    """No agent with that id (or name or email) is in the database."""


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One audited presence change (the actions table)."""

    at_ms: int
    actor: str
    from_value: str | None
    to_value: str
    dry_run: bool
    outcome: str
    error: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class AgentTimeline:
    agent: Agent
    start_ms: int
    end_ms: int  # the end asked for; intervals stop at `now` when that comes first
    now_ms: int
    intervals: list[Interval]
    actions: list[ActionRow]
    gaps: list[Gap] = field(default_factory=list)


async def find_agent(store: Store, wanted: str) -> Agent:
    """The agent with this id, or else this email or name (case-insensitive) if only one has it."""
    agents = await store.agents()
    for agent in agents:
        if agent.id == wanted:
            return agent
    folded = wanted.casefold()
    matches = [a for a in agents if folded in (a.email.casefold(), a.name.casefold())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownAgent(f"{len(matches)} agents are called {wanted!r}; give the agent id")
    raise UnknownAgent(f"no agent {wanted!r} in the database")


async def agent_timeline(
    store: Store, agent_id: str, start_ms: int, end_ms: int, now_ms: int
) -> AgentTimeline:
    """One agent's presence and routing intervals in [start_ms, end_ms) (cut at `now_ms`), the
    actions taken on them and the gaps that concern them."""
    if end_ms <= start_ms:
        raise ValueError("the end of a timeline must be after its start")
    if end_ms - start_ms > MAX_DAYS * DAY_MS:
        raise ValueError(f"a timeline covers at most {MAX_DAYS} days")
    async with store._reader() as conn:
        with translate("cannot read the agent's timeline"):
            await conn.execute("BEGIN")
            try:
                rows = list(
                    await conn.execute_fetchall(
                        "SELECT key, id, name, email, division_id, division_name, department,"
                        " manager_id, queue_ids, state FROM agents WHERE id = ?",
                        (agent_id,),
                    )
                )
                if not rows:
                    raise UnknownAgent(f"no agent {agent_id!r} in the database")
                key, agent = int(rows[0][0]), agent_from_row(rows[0][1:])
                until = max(start_ms, min(end_ms, now_ms))
                marks = await reads.marks(conn, key, start_ms, until)
                oldest = await scalar(conn, "SELECT min(event_ms) FROM transitions")
                kinds = {Kind.PRESENCE.value, Kind.ROUTING.value}
                openings = await reads.last_marks(conn, key, start_ms, oldest, kinds)
                gaps = [
                    g
                    for g in await reads.gaps(conn, start_ms, end_ms, now_ms)
                    if reads.concerns(g, agent_id)
                ]
                actions = await _actions(conn, key, start_ms, end_ms)
            finally:
                await conn.execute("COMMIT")
    merged = GapIndex[int](start_ms, until, [(g.start_ms, g.end_ms) for g in gaps]).of(key)
    found = intervals(marks, openings, start_ms, until, merged)
    return AgentTimeline(agent, start_ms, end_ms, now_ms, found, actions, gaps)


async def _actions(
    conn: aiosqlite.Connection, agent: int, start_ms: int, end_ms: int
) -> list[ActionRow]:
    rows = await conn.execute_fetchall(
        "SELECT at_ms, actor, from_value, to_value, dry_run, outcome, error, request_id"
        " FROM actions WHERE at_ms >= ? AND at_ms < ? AND agent = ? ORDER BY at_ms, id",
        (start_ms, end_ms, agent),
    )
    # Older rows hold NULL where newer ones hold '' for "no error" and "no request id".
    return [
        ActionRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6] or None, r[7] or None)
        for r in rows
    ]
