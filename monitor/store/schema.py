"""The SQLite schema, as numbered migrations, and why it has the shape it has.

`PRAGMA user_version` holds the number of the last migration applied. Each migration is a list of
statements that the store runs in one `BEGIN IMMEDIATE` transaction together with the version
bump, so a migration lands completely or not at all. Add a migration by appending to MIGRATIONS;
never edit one that has shipped.

Why the transitions table looks the way it does (the insert rate on a large table depends on it):

- Agents are referred to by a small integer key, not by their Genesys id (a UUID). A UUID in an
  index scatters inserts over the whole index, and every page touched by a commit is written to
  the WAL and checkpointed again; integer keys keep the rows and indexes small.
- The natural key (event time, agent, kind, to value, definition id) starts with the event time,
  so inserts of live transitions append at the right edge of that index. The same index serves
  exports and pruning by time.
- Rows are found by agent through `agent_index` (hour of the event, agent, event time, row id),
  which starts with the hour (epoch ms // 3,600,000): per-agent queries seek once per hour of
  their range (a year is 8,760 seeks, a few milliseconds). It is filled an hour at a time, once
  the hour is over (`Store.index_hours`), not row by row as live transitions are written. Any
  index that leads with the agent, even within one hour, has one insertion point per agent: a
  batch of 10,000 rows over 20,000 agents rewrote most pages of the current hour's part of such
  an index, and once the hour held a million rows every commit wrote tens of megabytes to the
  WAL (67,000 rows/s instead of 245,000 without it, on two million rows). Filled after the hour,
  its rows arrive sorted and append at its right edge.
- `agent_index_until` holds the time before which every transition is in `agent_index`. A
  transition written with an earlier event time (a snapshot or a late frame) goes into the index
  in the same transaction; the rows at and after that time, the current hour and little more,
  are read by agent from the natural-key index, which starts with the event time and covers the
  agent. A trigger removes a deleted transition's index row.
- `definition_id` is '' rather than NULL when there is none: NULLs are distinct in a UNIQUE index,
  so a replayed routing transition would otherwise be inserted twice.
"""

from __future__ import annotations

from typing import Final

# 'GPMN' in ASCII: tells our databases apart from any other SQLite file that has a user_version.
APPLICATION_ID: Final = 0x47504D4E

HOUR_MS: Final = 3_600_000

_V1: Final[tuple[str, ...]] = (
    """
    CREATE TABLE agents (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        division_id TEXT NOT NULL DEFAULT '',
        division_name TEXT NOT NULL DEFAULT '',
        department TEXT NOT NULL DEFAULT '',
        manager_id TEXT NOT NULL DEFAULT '',
        queue_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(queue_ids)),
        state TEXT NOT NULL DEFAULT 'unknown',
        synced_ms INTEGER
    )
    """,
    """
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        agent INTEGER NOT NULL REFERENCES agents (key),
        kind TEXT NOT NULL CHECK (kind IN ('presence', 'routing')),
        from_value TEXT,
        to_value TEXT NOT NULL,
        definition_id TEXT NOT NULL DEFAULT '',
        event_ms INTEGER NOT NULL,
        seen_ms INTEGER NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('live', 'snapshot', 'backfill')),
        -- 1: arrived after a newer change; history only, never the current state.
        late INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1))
    )
    """,
    """
    CREATE UNIQUE INDEX transitions_natural
        ON transitions (event_ms, agent, kind, to_value, definition_id)
    """,
    # The hour is an expression rather than a generated column: SQLite 3.40 fails to
    # VACUUM INTO from a read-only connection a table that has a generated column.
    "CREATE INDEX transitions_agent_hour ON transitions (event_ms / 3600000, agent, event_ms)",
    """
    CREATE TABLE current_state (
        agent INTEGER NOT NULL REFERENCES agents (key),
        kind TEXT NOT NULL CHECK (kind IN ('presence', 'routing')),
        value TEXT NOT NULL,
        definition_id TEXT NOT NULL DEFAULT '',
        since_ms INTEGER NOT NULL,
        watermark_ms INTEGER NOT NULL,
        PRIMARY KEY (agent, kind)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE gaps (
        id INTEGER PRIMARY KEY,
        channel_id TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        reason TEXT NOT NULL,
        -- JSON list of the agent ids the channel carried; [] for every agent (the monitor down).
        agents TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(agents)),
        CHECK (end_ms >= start_ms),
        UNIQUE (channel_id, start_ms)
    )
    """,
    "CREATE INDEX gaps_by_start ON gaps (start_ms)",
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        agent INTEGER NOT NULL REFERENCES agents (key),
        from_value TEXT,
        to_value TEXT NOT NULL,
        definition_id TEXT NOT NULL DEFAULT '',
        dry_run INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
        outcome TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        -- The time Genesys gave the resulting presence: the event time of the transition the
        -- change causes, which matches the two.
        event_ms INTEGER
    )
    """,
    "CREATE INDEX actions_by_time ON actions (at_ms)",
    "CREATE INDEX actions_by_agent ON actions (agent, at_ms)",
    """
    CREATE TABLE schedule_runs (
        schedule TEXT NOT NULL,
        due_ms INTEGER NOT NULL,
        run_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (schedule, due_ms)
    ) WITHOUT ROWID
    """,
    # Small facts the daemon keeps across restarts, e.g. when it was last alive.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

# The per-agent index becomes a table of its own, filled once an hour is over (see above). Every
# existing row goes into it, read in the old index's order, so the copy appends; the hour of the
# newest row stays open, as the daemon may still be writing it.
_V2: Final[tuple[str, ...]] = (
    """
    CREATE TABLE agent_index (
        hour INTEGER NOT NULL,
        agent INTEGER NOT NULL,
        event_ms INTEGER NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (hour, agent, event_ms, id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE agent_index_until (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        until_ms INTEGER NOT NULL
    )
    """,
    """
    INSERT INTO agent_index_until (one, until_ms)
    SELECT 1, coalesce(max(event_ms) / 3600000 * 3600000, 0) FROM transitions
    """,
    """
    INSERT INTO agent_index (hour, agent, event_ms, id)
    SELECT event_ms / 3600000, agent, event_ms, id FROM transitions
    WHERE event_ms < (SELECT until_ms FROM agent_index_until)
    ORDER BY event_ms / 3600000, agent, event_ms, id
    """,
    "DROP INDEX transitions_agent_hour",
    """
    CREATE TRIGGER agent_index_forget AFTER DELETE ON transitions
    WHEN OLD.event_ms < (SELECT until_ms FROM agent_index_until)
    BEGIN
        DELETE FROM agent_index
        WHERE hour = OLD.event_ms / 3600000 AND agent = OLD.agent
            AND event_ms = OLD.event_ms AND id = OLD.id;
    END
    """,
)

# MIGRATIONS[k - 1] takes a database from user_version k - 1 to k.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2)

SCHEMA_VERSION: Final = len(MIGRATIONS)
