"""The last known presence and routing status of every agent, and the transitions between them.

Genesys promises neither ordering nor exactly-once delivery (GENESYS.md 7), and the daemon hears
the same change several times: live frames, overlapping sockets during a rollover, and snapshots
read after a gap. The tracker therefore orders by the event's own time (`modifiedDate`,
`startTime`), never by arrival, and its rules make the final state a function of the *set* of
events seen, whatever their order or repetition:

- no state yet: the update becomes the state; a transition from None.
- older than the watermark (the newest event time applied) and among the recent events: a
  duplicate, ignored.
- older than the watermark and not seen before: a *late* change (reordered delivery, or a
  snapshot that read a change the socket missed). It happened, so it is recorded, in its place in
  time, as a transition marked `late`; it never changes the current state.
- same time, same (value, definition): a duplicate, ignored.
- same time, different: a tie, settled by the larger (value, definition or ""), so every order
  agrees; if the update wins, it is applied as a transition.
- newer and different: a transition.
- newer and the same: the status was left and re-entered (or, for presence, only its message
  changed) through events we did not see. `since` moves to the new event time and a transition
  with from_value == to_value marks the boundary for reports.

Consequently the transitions emitted for one (agent, kind) that are not late strictly increase
in (event_ms, value, definition or ""): event times never go back, and are equal only for a tie
won. The recent events remembered per agent and kind are few (RECENT); a late event older than
those may be emitted again, and the store's natural key makes that repeat harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from monitor.core.model import Kind, Source, StatusState, Transition, Update

__all__ = ["Tracker"]

# How many recent events (event_ms, value, definition) are remembered per agent and kind, to tell a
# late change from a repeat of one already recorded.
RECENT = 6

# A recent event is kept as one int, event_ms * _SPAN + the number the tracker gave its (value,
# definition) pair; an org has a few dozen such pairs. One int costs 36 bytes where a tuple of
# three and its int cost about 100: at 20,000 agents, recent events are the tracker's largest part.
# The common paths only build and compare these ints; ordering (for ties and late events, which
# are rare) goes through the decoded (event_ms, value, definition) as before.
_SPAN = 1 << 32

_Event = tuple[int, str, str | None]
# (value, definition_id, since_ms, watermark_ms, recent events newest first, encoded). A plain
# tuple is several times cheaper to build than the frozen StatusState, and apply() builds one per
# update.
_Entry = tuple[str, str | None, int, int, tuple[int, ...]]


class Tracker:
    """Per (agent, kind) state; `apply()` turns updates into transitions.

    `applied`, `duplicates` and `stale` count the updates accepted, dropped as repeats, and dropped
    as older than what we know (including ties lost), so that metrics can show them.
    """

    __slots__ = (
        "_codes",
        "_pairs",
        "_presence",
        "_routing",
        "applied",
        "duplicates",
        "late",
        "stale",
    )

    def __init__(self) -> None:
        self._presence: dict[str, _Entry] = {}
        self._routing: dict[str, _Entry] = {}
        # (value, definition) <-> its number in encoded recent events. Pairs are never dropped:
        # they are as few as the org's presence definitions times the status names.
        self._codes: dict[tuple[str, str | None], int] = {}
        self._pairs: list[tuple[str, str | None]] = []
        self.applied = 0
        self.duplicates = 0
        self.late = 0
        self.stale = 0

    def _encode(self, event: int, value: str, definition: str | None) -> int:
        pair = (value, definition)
        code = self._codes.get(pair)
        if code is None:
            code = self._codes[pair] = len(self._pairs)
            self._pairs.append(pair)
        return event * _SPAN + code

    def _decode(self, encoded: int) -> _Event:
        event, code = divmod(encoded, _SPAN)
        value, definition = self._pairs[code]
        return event, value, definition

    def _merge(self, recent: tuple[int, ...], encoded: int) -> tuple[int, ...]:
        """`recent` with one more event, newest first by (event_ms, value, definition or ""),
        the oldest beyond RECENT dropped: the order every arrival order agrees on."""

        def order(item: int) -> tuple[int, str, str]:
            event, value, definition = self._decode(item)
            return event, value, definition or ""

        return tuple(sorted((*recent, encoded), key=order, reverse=True)[:RECENT])

    def _table(self, kind: Kind) -> dict[str, _Entry]:
        # One dict per kind keeps the key a plain str, whose hash is cached; an enum in a tuple
        # key would be hashed through Python code on every lookup.
        return self._presence if kind == Kind.PRESENCE else self._routing

    def apply(self, update: Update, seen_ms: int, source: Source) -> Transition | None:
        """Apply one update seen at `seen_ms`; return the transition it makes, if any."""
        kind = update.kind
        table = self._table(kind)
        agent = update.agent_id
        value = update.value
        # An empty definition id and a missing one are the same thing; one spelling keeps the
        # equality and tie comparisons below consistent whatever the order.
        definition = update.definition_id or None
        event = update.event_ms
        entry = table.get(agent)
        if entry is None:
            table[agent] = (
                value,
                definition,
                event,
                event,
                (self._encode(event, value, definition),),
            )
            self.applied += 1
            return Transition(agent, kind, None, value, definition, event, seen_ms, source)
        old_value, old_definition, since, watermark, recent = entry
        if event < watermark:
            encoded = self._encode(event, value, definition)
            return self._late(table, agent, kind, encoded, seen_ms, source)
        if value == old_value and definition == old_definition:
            if event == watermark:
                self.duplicates += 1
                return None
            # Newer and the same: a re-entry; falls through to record the boundary.
        elif event == watermark and (value, definition or "") < (old_value, old_definition or ""):
            # A tie lost: the state already holds the winner, whichever arrived first. It is
            # remembered, so that hearing it again later is a repeat, not a late change.
            encoded = self._encode(event, value, definition)
            if encoded not in recent:
                merged = self._merge(recent, encoded)
                table[agent] = (old_value, old_definition, since, watermark, merged)
            self.stale += 1
            return None
        table[agent] = (
            value,
            definition,
            event,
            event,
            (self._encode(event, value, definition), *recent[: RECENT - 1]),
        )
        self.applied += 1
        return Transition(agent, kind, old_value, value, definition, event, seen_ms, source)

    def _late(
        self,
        table: dict[str, _Entry],
        agent: str,
        kind: Kind,
        encoded: int,
        seen_ms: int,
        source: Source,
    ) -> Transition | None:
        value, definition, since, watermark, recent = table[agent]
        if encoded in recent:
            self.duplicates += 1
            return None
        event = self._decode(encoded)
        # The change that was current just before this one, if still remembered: the newest with
        # an earlier event time (encoded below event_ms * _SPAN).
        floor = event[0] * _SPAN
        before = next((e for e in recent if e < floor), None)
        table[agent] = (value, definition, since, watermark, self._merge(recent, encoded))
        self.late += 1
        return Transition(
            agent,
            kind,
            None if before is None else self._decode(before)[1],
            event[1],
            event[2],
            event[0],
            seen_ms,
            source,
            late=True,
        )

    def state(self, agent_id: str, kind: Kind) -> StatusState | None:
        """What we know of one agent's presence or routing status, or None."""
        entry = self._table(kind).get(agent_id)
        return None if entry is None else StatusState(*entry[:4])

    def both(self, agent_id: str) -> tuple[StatusState | None, StatusState | None]:
        """The agent's presence and routing status, as `state` gives each (for reading every
        agent at once, as the stuck rules do every few seconds)."""
        presence = self._presence.get(agent_id)
        routing = self._routing.get(agent_id)
        return (
            None if presence is None else StatusState(*presence[:4]),
            None if routing is None else StatusState(*routing[:4]),
        )

    def values(self, agent_id: str) -> tuple[str | None, str | None]:
        """The agent's presence and routing status values (None where unknown), without the
        rest of their states."""
        presence = self._presence.get(agent_id)
        routing = self._routing.get(agent_id)
        return (
            None if presence is None else presence[0],
            None if routing is None else routing[0],
        )

    def states(self) -> Iterator[tuple[tuple[str, Kind], StatusState]]:
        """Every known state, presence first; the shape `load()` takes back."""
        for kind, table in ((Kind.PRESENCE, self._presence), (Kind.ROUTING, self._routing)):
            for agent, entry in list(table.items()):
                yield (agent, kind), StatusState(*entry[:4])

    def load(self, items: Iterable[tuple[tuple[str, Kind], StatusState]]) -> int:
        """Restore states (e.g. from the database at start) without making transitions.

        Replaces what is known for the given (agent, kind) pairs; returns how many were loaded.
        """
        count = 0
        for (agent, kind), state in items:
            definition = state.definition_id or None
            recent: tuple[int, ...] = (self._encode(state.watermark_ms, state.value, definition),)
            if state.since_ms != state.watermark_ms:
                since = self._encode(state.since_ms, state.value, definition)
                recent = self._merge(recent, since)
            self._table(kind)[agent] = (
                state.value,
                definition,
                state.since_ms,
                state.watermark_ms,
                recent,
            )
            count += 1
        return count

    def forget(self, agent_id: str) -> bool:
        """Drop both states of an agent (e.g. it left the roster); whether anything was known."""
        had_presence = self._presence.pop(agent_id, None) is not None
        had_routing = self._routing.pop(agent_id, None) is not None
        return had_presence or had_routing

    def __len__(self) -> int:
        return len(self._presence) + len(self._routing)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._presence or agent_id in self._routing
