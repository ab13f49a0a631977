"""The SQL that the store runs on the schema of schema.py, kept apart from the code that runs it."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from typing import Final

from monitor.store.schema import HOUR_MS

# Ordering of the transitions of one agent and kind, newest first: the latest event wins, and a
# tie on event time goes to the larger (value, definition id), as in core.tracker, so the store
# and the tracker agree on the current state. rows.transition_rows and UPSERT_STATES_CONFLICT use
# the same order. Late transitions never count (the tracker marks them: they are history only).
NEWEST_FIRST: Final = "event_ms DESC, to_value DESC, definition_id DESC"

# Batches are inserted with multi-row VALUES statements rather than executemany. sqlite3 releases
# the GIL around each sqlite3_step and must take it back afterwards: with executemany that is once
# per row, and while another thread is busy each retake can wait up to the interpreter's switch
# interval (5 ms). One statement per chunk of rows retakes it once per chunk, and binding a chunk
# in one call is also cheaper than row by row. Chunk sizes come from a fixed set so that
# sqlite3's statement cache holds every statement text we use. Chunks of 3,640 rows (nine columns
# each, the most SQLite's 32,766 variables allow) saved about 4 ms a batch of 10,000, but their
# prepared statements, kept in that cache, added 5 MiB of resident memory.
_CHUNKS: Final = (1024, 256, 64, 16, 4, 1)

INSERT_TRANSITIONS: Final = """
    INSERT INTO transitions
        (agent, kind, from_value, to_value, definition_id, event_ms, seen_ms, source, late)
    VALUES
"""
# A replay changes nothing, except that a change first recorded as late and then heard as current
# is current: rebuild_current_state must be able to find it.
INSERT_TRANSITIONS_CONFLICT: Final = """
    ON CONFLICT (event_ms, agent, kind, to_value, definition_id) DO UPDATE SET late = 0
    WHERE transitions.late = 1 AND excluded.late = 0
"""

UPSERT_STATES: Final = """
    INSERT INTO current_state (agent, kind, value, definition_id, since_ms, watermark_ms)
    VALUES
"""

# A state replaces the stored one only if it is newer in the same order that
# rebuild_current_state uses, so batches may commit in any order.
UPSERT_STATES_CONFLICT: Final = """
    ON CONFLICT (agent, kind) DO UPDATE SET
        value = excluded.value,
        definition_id = excluded.definition_id,
        since_ms = excluded.since_ms,
        watermark_ms = max(current_state.watermark_ms, excluded.watermark_ms)
    WHERE (excluded.since_ms, excluded.value, excluded.definition_id)
        > (current_state.since_ms, current_state.value, current_state.definition_id)
"""


@functools.lru_cache(maxsize=64)
def _values_statement(head: str, width: int, rows: int, tail: str) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} {', '.join([row] * rows)} {tail}"


def multi_row(
    head: str, rows: Sequence[Sequence[object]], tail: str = ""
) -> Iterator[tuple[str, list[object]]]:
    """(statement, parameters) pairs that insert `rows` with `head` VALUES (...), ... `tail`."""
    if not rows:
        return
    width = len(rows[0])
    start = 0
    for size in _CHUNKS:
        while len(rows) - start >= size:
            part = rows[start : start + size]
            yield _values_statement(head, width, size, tail), list(itertools.chain(*part))
            start += size


REBUILD_STATE: Final = f"""
    INSERT INTO current_state (agent, kind, value, definition_id, since_ms, watermark_ms)
    SELECT agent, kind, to_value, definition_id, event_ms, event_ms
    FROM (
        SELECT agent, kind, to_value, definition_id, event_ms,
            row_number() OVER (PARTITION BY agent, kind ORDER BY {NEWEST_FIRST}) AS rank
        FROM transitions
        WHERE NOT late
    )
    WHERE rank = 1
"""

UPSERT_AGENT = """
    INSERT INTO agents (id, name, email, division_id, division_name, department, manager_id,
        queue_ids, state, synced_ms)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        name = excluded.name,
        email = excluded.email,
        division_id = excluded.division_id,
        division_name = excluded.division_name,
        department = excluded.department,
        manager_id = excluded.manager_id,
        queue_ids = excluded.queue_ids,
        state = excluded.state,
        synced_ms = excluded.synced_ms
"""

AGENT_KEYS = "SELECT id, key FROM agents WHERE id IN (SELECT value FROM json_each(?))"

# Old transitions go, except each one that current_state still describes: the state an agent is
# in may have begun long ago, and rebuild_current_state must still find it. A chunk's ids are
# selected first and then deleted by id in the same transaction: a single
# "DELETE ... WHERE id IN (SELECT ...)" lets the planner scan the whole table when the statistics
# that PRAGMA optimize gathered date from when the table was small.
PRUNABLE_TRANSITIONS = """
    SELECT t.id FROM transitions AS t
    WHERE t.event_ms < ?
        AND NOT EXISTS (
            SELECT 1 FROM current_state AS c
            WHERE c.agent = t.agent AND c.kind = t.kind AND c.since_ms = t.event_ms
                AND c.value = t.to_value AND c.definition_id = t.definition_id
        )
    ORDER BY t.event_ms
    LIMIT ?
"""
DELETE_TRANSITION = "DELETE FROM transitions WHERE id = ?"

PRUNABLE_GAPS = "SELECT id FROM gaps WHERE end_ms < ? ORDER BY end_ms LIMIT ?"
DELETE_GAP = "DELETE FROM gaps WHERE id = ?"

# Times are formatted by SQLite, several times faster than in Python, and exact: SQLite holds a
# time as integer milliseconds and rounds ms / 1000.0 back to the same millisecond for any time
# up to the year 9999 (tests/test_store.py compares it with core.timefmt).
_ISO = "strftime('%Y-%m-%dT%H:%M:%fZ', {} / 1000.0, 'unixepoch')"

_EXPORT_COLUMNS = f"""
    SELECT a.id, t.kind, t.from_value, t.to_value, t.definition_id,
        {_ISO.format("t.event_ms")}, {_ISO.format("t.seen_ms")}, t.source
    FROM transitions AS t JOIN agents AS a ON a.key = t.agent
"""

# Both in the natural key's order, which transitions_natural yields without sorting.
EXPORT_ALL = f"""
    {_EXPORT_COLUMNS}
    WHERE t.event_ms >= ? AND t.event_ms < ?
    ORDER BY t.event_ms, t.agent, t.kind, t.to_value, t.definition_id
"""

# The hours :low to :high, for one seek per hour into agent_index.
_HOURS = """
    WITH RECURSIVE hours (hour) AS (
        SELECT :low UNION ALL SELECT hour + 1 FROM hours WHERE hour < :high
    )
"""
# The ids of one agent's transitions with event time in [:since, :until): before
# agent_index_until through agent_index, one seek per hour (see schema.py); from then on (the
# current hour) from the natural-key index, which starts with the event time and covers the
# agent. The parts never overlap, and one statement reads both from one snapshot, so an hour
# being indexed meanwhile is read once.
_AGENT_IDS = """
    SELECT id FROM agent_index
    WHERE hour IN (SELECT hour FROM hours) AND agent = :agent
        AND event_ms >= :since AND event_ms < :until
    UNION ALL
    SELECT id FROM transitions
    WHERE event_ms >= max(:since, (SELECT until_ms FROM agent_index_until))
        AND event_ms < :until AND agent = :agent
"""

EXPORT_AGENT = f"""
    {_HOURS}
    {_EXPORT_COLUMNS}
    WHERE t.id IN ({_AGENT_IDS})
    ORDER BY t.event_ms, t.kind, t.to_value, t.definition_id
"""

AGENT_ROWS = f"""
    {_HOURS}
    SELECT kind, event_ms, to_value, definition_id, source FROM transitions
    WHERE id IN ({_AGENT_IDS})
"""


def agent_range(agent: int, since_ms: int, until_ms: int) -> dict[str, int]:
    """The parameters of EXPORT_AGENT and AGENT_ROWS for `agent`'s rows in [since_ms, until_ms)."""
    return {
        "low": since_ms // HOUR_MS,
        "high": (until_ms - 1) // HOUR_MS,
        "agent": agent,
        "since": since_ms,
        "until": until_ms,
    }


INDEXED_UNTIL = "SELECT until_ms FROM agent_index_until"

# The transitions of [?, ?) into agent_index in its own order. Every row there is older, so
# they append at its right edge.
INDEX_HOURS = """
    INSERT INTO agent_index (hour, agent, event_ms, id)
    SELECT event_ms / 3600000, agent, event_ms, id FROM transitions
    WHERE event_ms >= ? AND event_ms < ?
    ORDER BY event_ms / 3600000, agent, event_ms, id
"""
SET_INDEXED_UNTIL = "UPDATE agent_index_until SET until_ms = ?"

# Transitions written with an event time before agent_index_until (a snapshot's, a late
# frame's) join agent_index at once, found by their natural keys (multi_row supplies the VALUES
# rows: event_ms, agent, kind, to_value, definition_id); a replay's row is there already. One
# statement per chunk, not one per row: a snapshot after a long gap can bring tens of thousands
# of them, and each statement waits for the GIL (see _CHUNKS).
INDEX_EARLY = """
    INSERT OR IGNORE INTO agent_index (hour, agent, event_ms, id)
    SELECT t.event_ms / 3600000, t.agent, t.event_ms, t.id
    FROM (VALUES
"""
INDEX_EARLY_JOIN = """
    ) AS v
    JOIN transitions AS t ON t.event_ms = v.column1 AND t.agent = v.column2
        AND t.kind = v.column3 AND t.to_value = v.column4 AND t.definition_id = v.column5
"""
