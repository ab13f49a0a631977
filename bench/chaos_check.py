"""The chaos run's verdict: the daemon's database compared with the simulator's ground truth.

Every row must be a change that happened (no invention, no mix-up of values), and no change may
be recorded twice. A change that was never recorded is acceptable only where Genesys itself
would lose it: inside an interval in which the daemon was not watching that agent (a gap of one
of its channels, the daemon down, or the agent not yet on its roster), since notification
channels keep no backlog. And every such interval must be closed by a snapshot: for each agent it
covered, the last change before the interval ended must be in the database, whatever the source
(a snapshot read it, or it came live once the channel was back). Finally the daemon's current
state must equal the truth for every active agent.
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (agent id, kind) -> value and definition id ("" for none)
State = dict[tuple[str, str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class TrueChange:
    """One change of the ground truth, or an agent's state when it joined the org."""

    agent_id: str
    kind: str
    value: str
    definition_id: str
    event_ms: int
    initial: bool = False
    delivered: bool = False  # the simulator wrote its frame to at least one socket


@dataclass(frozen=True, slots=True)
class Window:
    """An interval in which the daemon was not watching `agents` (None: every agent)."""

    start_ms: int
    end_ms: int
    agents: frozenset[str] | None
    reason: str


@dataclass(frozen=True, slots=True)
class Row:
    agent_id: str
    kind: str
    value: str
    definition_id: str
    event_ms: int
    source: str
    late: bool
    seen_ms: int


@dataclass
class Findings:
    rows: int = 0
    truth_changes: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    late_rows: int = 0
    duplicates: int = 0
    invented: int = 0  # rows that match no change of the truth
    lost: int = 0  # changes never recorded, outside every window
    lost_in_windows: int = 0  # unrecorded, inside a window: as Genesys would lose them
    unrecovered: int = 0  # windows' last changes not recorded
    recovered: int = 0
    superseded: int = 0  # windows' last changes replaced by a newer live one before the snapshot
    final_mismatches: int = 0
    final_checked: int = 0
    windows: Counter[str] = field(default_factory=Counter)
    # Unrecovered changes by window ("<start ms> <reason>"): one bad moment or many.
    unrecovered_by_window: Counter[str] = field(default_factory=Counter)
    # Examples of each kind of failure: (simulated time it concerns, description).
    samples: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))

    def sample(self, what: str, at_ms: int, text: str, limit: int = 8) -> None:
        if len(self.samples[what]) < limit:
            self.samples[what].append((at_ms, text))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = dict(value) if isinstance(value, dict) else value
        return out

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.invented
            or self.lost
            or self.unrecovered
            or self.final_mismatches
        )


# --- reading the database ----------------------------------------------------------------------


def read_database(path: Path) -> tuple[list[Row], State, list[Window]]:
    """Every transition, the current state and the recorded gaps of a (closed) database."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ids = dict(conn.execute("SELECT key, id FROM agents"))
        rows = [
            Row(ids[a], k, v, d, e, s, bool(late), seen)
            for a, k, v, d, e, s, late, seen in conn.execute(
                "SELECT agent, kind, to_value, definition_id, event_ms, source, late, seen_ms"
                " FROM transitions"
            )
        ]
        current = {
            (ids[a], k): (v, d)
            for a, k, v, d in conn.execute(
                "SELECT agent, kind, value, definition_id FROM current_state"
            )
        }
        gaps = [
            Window(start, end, frozenset(json.loads(agents)) or None, f"gap: {reason}")
            for start, end, reason, agents in conn.execute(
                "SELECT start_ms, end_ms, reason, agents FROM gaps"
            )
        ]
    finally:
        conn.close()
    return rows, current, gaps


def current_state(path: Path) -> State:
    """The daemon's committed current state (while it runs: WAL readers never block it)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ids = dict(conn.execute("SELECT key, id FROM agents"))
        return {
            (ids[a], k): (v, d)
            for a, k, v, d in conn.execute(
                "SELECT agent, kind, value, definition_id FROM current_state"
            )
        }
    finally:
        conn.close()


def final_mismatches(truth: State, current: State) -> list[str]:
    """Where the daemon's current state differs from the truth (active agents only)."""
    out = []
    for key, value in truth.items():
        known = current.get(key)
        if known != value:
            out.append(f"{key[0]} {key[1]}: truth {value}, daemon {known}")
    return out


# --- the verdict -------------------------------------------------------------------------------


def verify(
    changes: Iterable[TrueChange],
    rows: Sequence[Row],
    windows: Sequence[Window],
    truth_now: State,
    current: State,
    *,
    joined_ms: Mapping[str, int],
    left_ms: Mapping[str, int],
    slack_ms: int,
) -> Findings:
    """Judge the database. `joined_ms`/`left_ms`: when agents were hired/deactivated during the
    run; `slack_ms`: how much earlier than a window's recorded start a change may have been lost
    (frames already written by the server when a socket died, events received but not yet
    committed when the daemon was killed)."""
    f = Findings(rows=len(rows))
    recorded: dict[tuple[str, str, int], list[Row]] = defaultdict(list)
    for row in rows:
        recorded[row.agent_id, row.kind, row.event_ms].append(row)
        f.by_source[row.source] += 1
        f.late_rows += row.late
    for where, found in recorded.items():
        if len(found) > 1:
            f.duplicates += len(found) - 1
            f.sample("duplicates", where[2], f"{where}: {found}")

    timeline: dict[tuple[str, str], list[TrueChange]] = defaultdict(list)
    for change in changes:
        timeline[change.agent_id, change.kind].append(change)
        f.truth_changes += not change.initial
    for series in timeline.values():
        series.sort(key=lambda c: c.event_ms)
    times = {key: [c.event_ms for c in series] for key, series in timeline.items()}
    truth_keys = {(c.agent_id, c.kind, c.event_ms): c for s in timeline.values() for c in s}

    for where, found in recorded.items():
        match = truth_keys.get(where)
        for row in found:
            if match is None or (row.value, row.definition_id) != (
                match.value,
                match.definition_id,
            ):
                f.invented += 1
                f.sample("invented", row.event_ms, f"{row} against {match}")

    def is_recorded(c: TrueChange) -> bool:
        return any(
            (r.value, r.definition_id) == (c.value, c.definition_id)
            for r in recorded.get((c.agent_id, c.kind, c.event_ms), ())
        )

    rows_of: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        rows_of[row.agent_id, row.kind].append(row)

    def story(c: TrueChange, around_ms: int = 30 * 60_000) -> str:
        """The agent's changes and rows near `c`: what happened, and what was recorded."""
        lo, hi = c.event_ms - around_ms, c.event_ms + around_ms
        events = [
            (
                x.event_ms,
                f"truth {x.value}{' (sent)' if x.delivered else ''}"
                f"{' REC' if is_recorded(x) else ''}",
            )
            for x in timeline[c.agent_id, c.kind]
            if lo <= x.event_ms <= hi
        ]
        events += [
            (r.event_ms, f"row {r.value} {r.source}{' late' if r.late else ''}")
            for r in rows_of[c.agent_id, c.kind]
            if lo <= r.event_ms <= hi
        ]
        return "; ".join(f"{(t - c.event_ms) / 1000:+.0f}s {text}" for t, text in sorted(events))

    # When the daemon first recorded anything of an agent: an agent hired during the run is
    # watched from its roster's next refresh on, whatever the event times of its first rows.
    first_seen: dict[str, int] = {}
    for row in rows:
        first_seen[row.agent_id] = min(first_seen.get(row.agent_id, row.seen_ms), row.seen_ms)
    by_agent: dict[str | None, list[Window]] = defaultdict(list)
    for window in windows:
        f.windows[window.reason.split(":")[0]] += 1
        for agent in window.agents if window.agents is not None else (None,):
            by_agent[agent].append(window)

    def unwatched(c: TrueChange) -> bool:
        joined = joined_ms.get(c.agent_id)
        if joined is not None and c.event_ms <= first_seen.get(c.agent_id, c.event_ms):
            return True  # hired during the run: not on the daemon's roster yet
        for window in (*by_agent[None], *by_agent[c.agent_id]):
            if window.start_ms - slack_ms <= c.event_ms <= window.end_ms:
                return True
        return False

    for series in timeline.values():
        for c in series:
            if is_recorded(c):
                continue
            if c.initial and c.agent_id in joined_ms:
                continue  # joined Offline, and the daemon first read a later state
            if unwatched(c) or (c.agent_id in left_ms and c.event_ms >= left_ms[c.agent_id]):
                f.lost_in_windows += 1
            else:
                f.lost += 1
                if len(f.samples["lost"]) < 8:
                    f.sample("lost", c.event_ms, f"{c} | {story(c)}")

    # Every window must end with the agents' state as of its end recorded.
    for window in windows:
        keys: Iterable[tuple[str, str]]
        if window.agents is None:
            keys = timeline.keys()
        else:
            keys = [(a, k) for a in window.agents for k in ("presence", "routing")]
        for key in keys:
            changed = timeline.get(key)
            if not changed:
                continue
            last = bisect.bisect_right(times[key], window.end_ms) - 1
            if last < 0 or changed[last].event_ms < window.start_ms - slack_ms:
                continue  # no change near or inside the window: nothing to recover
            c = changed[last]
            gone = left_ms.get(c.agent_id)
            if gone is not None and gone <= window.end_ms:
                continue
            if c.agent_id in joined_ms and c.agent_id not in first_seen:
                continue
            if is_recorded(c):
                f.recovered += 1
                continue
            # The snapshot is read once events flow again, after the window's end: a change made
            # in between is newer than what it reads, and supersedes `c`, if it is recorded.
            until = bisect.bisect_right(times[key], window.end_ms + slack_ms)
            if any(is_recorded(changed[i]) for i in range(last + 1, until)):
                f.superseded += 1
                continue
            f.unrecovered += 1
            f.unrecovered_by_window[f"{window.start_ms} {window.reason}"] += 1
            f.sample(
                "unrecovered",
                c.event_ms,
                f"{window.reason} [{window.start_ms - c.event_ms:+}, {window.end_ms - c.event_ms:+}]"
                f" ms: {c} | {story(c)}",
            )

    mismatches = final_mismatches(truth_now, current)
    f.final_checked = len(truth_now)
    f.final_mismatches = len(mismatches)
    for text in mismatches[:5]:
        f.sample("final state", 0, text)
    return f
