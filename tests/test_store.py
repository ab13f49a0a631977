"""The SQLite store, on real database files in a temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.model import Agent, Gap, Kind, Source, StatusState, Transition
from monitor.core.timefmt import format_iso_ms as iso_ms
from monitor.core.timefmt import parse_iso_ms
from monitor.errors import StoreError
from monitor.store import SCHEMA_VERSION, ExportRow, Store, report_reads
from monitor.store.database import scalar
from monitor.store.rows import EXPORT_COLUMNS, Checked, check_transitions
from monitor.store.schema import MIGRATIONS
from tests.support import eventually

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def tr(
    agent: str,
    to: str,
    event_ms: int,
    *,
    kind: Kind = Kind.ROUTING,
    definition: str | None = None,
    seen_ms: int | None = None,
    source: Source = Source.LIVE,
    late: bool = False,
    from_value: str | None = None,
) -> Transition:
    return Transition(
        agent_id=agent,
        kind=kind,
        from_value=from_value,
        to_value=to,
        definition_id=definition,
        event_ms=event_ms,
        seen_ms=event_ms + 5 if seen_ms is None else seen_ms,
        source=source,
        late=late,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "monitor.db") as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0)


async def export(store: Store, *args: int | str | None, **kwargs: int) -> list[ExportRow]:
    async with contextlib.aclosing(store.export(*args, **kwargs)) as rows:  # type: ignore[arg-type]
        return [row async for row in rows]


def count(path: Path, sql: str = "SELECT count(*) FROM transitions") -> int:
    with contextlib.closing(raw(path)) as conn:
        return int(conn.execute(sql).fetchone()[0])


# --- opening, migrations, bad files ----------------------------------------------------------------


async def test_open_creates_the_folder_the_file_and_the_schema(tmp_path: Path) -> None:
    """Opening a path in a missing folder creates both, in WAL mode, at the current version."""
    path = tmp_path / "data" / "deeper" / "monitor.db"
    async with await Store.open(path) as store:
        assert await store.version() == SCHEMA_VERSION
    with contextlib.closing(raw(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    assert {"agents", "transitions", "current_state", "gaps", "actions", "schedule_runs"} <= tables


async def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    """A database opened a second time keeps its rows, its version and its agent keys."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        await store.write([tr("a1", "IDLE", T0), tr("a2", "OFF_QUEUE", T0 + 1)])
        states = await store.load_states()
    async with await Store.open(path) as store:
        assert await store.load_states() == states
        assert await store.version() == SCHEMA_VERSION
        assert (await store.stats()).transitions == 2
        assert await store.write([tr("a1", "INTERACTING", T0 + 2)]) == 1
    assert count(path, "SELECT count(*) FROM agents") == 2


async def test_two_stores_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Concurrent opens of a fresh file both succeed: the second sees the first's migration."""
    path = tmp_path / "monitor.db"
    first, second = await asyncio.gather(Store.open(path), Store.open(path))
    try:
        assert await first.version() == await second.version() == SCHEMA_VERSION
        await first.write([tr("a1", "IDLE", T0)])
    finally:
        await first.close()
        await second.close()
    assert count(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'transitions'") == 1


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    """A user_version beyond the known migrations raises StoreError and changes nothing."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path):
        pass
    with contextlib.closing(raw(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        await Store.open(path)
    assert count(path, "PRAGMA user_version") == SCHEMA_VERSION + 1


async def test_a_file_that_is_not_sqlite_raises_store_error(tmp_path: Path) -> None:
    """Opening a file of garbage raises StoreError saying it is not a database."""
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match="not a SQLite database"):
        await Store.open(path)


async def test_a_damaged_database_raises_store_error(tmp_path: Path) -> None:
    """A database whose schema page is overwritten raises StoreError at open, not later."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        await store.write([tr(f"a{n}", "IDLE", T0 + n) for n in range(200)])
    with path.open("r+b") as file:
        file.seek(100)  # past the 100-byte file header: the schema table's b-tree page
        file.write(b"\xff" * 3000)
    with pytest.raises(StoreError, match="cannot open"):
        await Store.open(path)


async def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file with tables but no schema version, or a foreign application id, is refused."""
    foreign = tmp_path / "foreign.db"
    with contextlib.closing(raw(foreign)) as conn:
        conn.execute("CREATE TABLE things (x)")
    with pytest.raises(StoreError, match="not a monitor database"):
        await Store.open(foreign)
    assert count(foreign, "SELECT count(*) FROM sqlite_schema") == 1
    other = tmp_path / "other.db"
    with contextlib.closing(raw(other)) as conn:
        conn.execute("PRAGMA application_id = 1234")
    with pytest.raises(StoreError, match="another application"):
        await Store.open(other)


async def test_a_folder_in_place_of_the_file_raises_store_error(tmp_path: Path) -> None:
    """A path that is a folder gives a clear StoreError."""
    with pytest.raises(StoreError, match="folder"):
        await Store.open(tmp_path)


async def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    """Using a store after close() raises StoreError; closing twice is harmless."""
    store = await Store.open(tmp_path / "monitor.db")
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.write([tr("a1", "IDLE", T0)])
    with pytest.raises(StoreError, match="closed"):
        await store.load_states()


async def test_sqlite_errors_are_translated(tmp_path: Path) -> None:
    """A write blocked by another connection's lock raises StoreError, not sqlite3.Error."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path, busy_timeout_ms=20) as store:
        with contextlib.closing(raw(path)) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                await store.write([tr("a1", "IDLE", T0)])
            other.execute("ROLLBACK")
        assert await store.write([tr("a1", "IDLE", T0)]) == 1


async def test_bad_transitions_are_refused_before_anything_is_written(store: Store) -> None:
    """A batch with one bad transition raises ValueError naming it, and writes nothing."""
    good = tr("a1", "IDLE", T0)
    bad_batches: list[list[object]] = [
        [good, "not a transition"],
        [good, tr("a2", "IDLE", -1)],
        [good, tr("", "IDLE", T0)],
        [good, tr("a2", "", T0)],
        [good, Transition("a2", "routing", None, "IDLE", None, T0, T0, Source.LIVE)],  # type: ignore[arg-type]
    ]
    for batch in bad_batches:
        with pytest.raises(ValueError, match="transition 1"):
            await store.write(batch)  # type: ignore[arg-type]
    assert (await store.stats()).transitions == 0
    assert await store.load_states() == {}


# --- transitions and current state -----------------------------------------------------------------


async def test_replayed_transitions_are_ignored(store: Store) -> None:
    """Writing the same transitions again adds nothing, with or without a definition id."""
    batch = [
        tr("a1", "IDLE", T0),
        tr("a1", "ON_QUEUE", T0, kind=Kind.PRESENCE, definition="def-on-queue"),
        tr("a2", "OFF_QUEUE", T0 + 10),
    ]
    assert await store.write(batch) == 3
    assert await store.write(batch) == 0
    # A replay seen later (another socket, a snapshot) is the same transition.
    again = [tr("a1", "IDLE", T0, seen_ms=T0 + 999, source=Source.SNAPSHOT)]
    assert await store.write(again) == 0
    assert (await store.stats()).transitions == 3
    assert len(await export(store)) == 3


async def test_unknown_agents_are_created_on_the_fly(store: Store) -> None:
    """Transitions for agents never synced create them, marked unknown, with no details."""
    await store.write([tr("new-agent", "IDLE", T0)])
    agents = await store.agents()
    assert agents == [Agent(id="new-agent", name="", state="unknown")]


async def test_current_state_follows_the_newest_transition_whatever_the_batch_order(
    store: Store,
) -> None:
    """A batch of older transitions written after newer ones does not move current_state back."""
    newer = [tr("a1", "INTERACTING", T0 + 100), tr("a2", "IDLE", T0 + 50)]
    older = [tr("a1", "IDLE", T0), tr("a2", "OFF_QUEUE", T0 + 10), tr("a3", "IDLE", T0)]
    await store.write(newer)
    await store.write(older)
    states = await store.load_states()
    assert states[("a1", Kind.ROUTING)] == StatusState("INTERACTING", None, T0 + 100, T0 + 100)
    assert states[("a2", Kind.ROUTING)] == StatusState("IDLE", None, T0 + 50, T0 + 50)
    assert states[("a3", Kind.ROUTING)] == StatusState("IDLE", None, T0, T0)
    assert (await store.stats()).transitions == 5


async def test_late_transitions_are_history_but_never_the_current_state(store: Store) -> None:
    """A transition marked late is stored and exported but leaves current_state alone."""
    await store.write([tr("a1", "IDLE", T0)])
    await store.write([tr("a1", "NOT_RESPONDING", T0 + 50, late=True)])
    assert (await store.load_states())[("a1", Kind.ROUTING)].value == "IDLE"
    assert [row["to"] for row in await export(store)] == ["IDLE", "NOT_RESPONDING"]
    await store.rebuild_current_state()
    assert (await store.load_states())[("a1", Kind.ROUTING)].value == "IDLE"


async def test_presence_definition_ids_round_trip(store: Store) -> None:
    """The definition id comes back from load_states and export; None stays None."""
    await store.write(
        [
            tr("a1", "ON_QUEUE", T0, kind=Kind.PRESENCE, definition="def-1"),
            tr("a1", "IDLE", T0),
        ]
    )
    states = await store.load_states()
    assert states[("a1", Kind.PRESENCE)].definition_id == "def-1"
    assert states[("a1", Kind.ROUTING)].definition_id is None
    rows = await export(store)
    assert {row["presence_definition_id"] for row in rows} == {"def-1", None}


async def test_rebuild_current_state_matches_what_writes_maintained(tmp_path: Path) -> None:
    """Rebuilding current_state from the transitions after it was lost gives the same states."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        for step in range(5):
            await store.write(
                [
                    tr(f"a{n}", ["IDLE", "INTERACTING", "OFF_QUEUE"][(n + step) % 3], T0 + step)
                    for n in range(20)
                ]
            )
        before = await store.load_states()
    with contextlib.closing(raw(path)) as conn:
        conn.execute("DELETE FROM current_state")
    async with await Store.open(path) as store:
        assert await store.load_states() == {}
        assert await store.rebuild_current_state() == 20
        assert await store.load_states() == before


KINDS = st.sampled_from([Kind.ROUTING, Kind.PRESENCE])
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a1", "a2", "a3"]),
        KINDS,
        st.sampled_from(["IDLE", "INTERACTING", "OFF_QUEUE"]),
        st.sampled_from([None, "def-a", "def-b"]),
        st.integers(0, 20),  # few distinct times, so ties on event time are common
        st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, cuts=st.lists(st.integers(0, 40), max_size=6), data=st.data())
def test_final_state_is_the_same_for_any_batching_and_order(
    events: list[tuple[str, Kind, str, str | None, int, bool]],
    cuts: list[int],
    data: st.DataObject,
) -> None:
    """Any split into batches, in any order, gives the state of the newest non-late
    transition (ties by value, definition), and rebuild_current_state agrees."""
    transitions = [
        tr(agent, value, T0 + at, kind=kind, definition=definition, late=late)
        for agent, kind, value, definition, at, late in events
    ]
    bounds = sorted({0, len(transitions), *(c for c in cuts if c < len(transitions))})
    batches = [transitions[a:b] for a, b in itertools.pairwise(bounds)]
    batches = data.draw(st.permutations(batches))

    expected: dict[tuple[str, Kind], StatusState] = {}
    for t in sorted(
        (t for t in transitions if not t.late),
        key=lambda t: (t.event_ms, t.to_value, t.definition_id or ""),
    ):
        expected[(t.agent_id, t.kind)] = StatusState(
            t.to_value, t.definition_id, t.event_ms, t.event_ms
        )

    async def scenario(path: Path) -> None:
        async with await Store.open(path) as store:
            for batch in batches:
                await store.write(batch)
            assert await store.load_states() == expected
            await store.rebuild_current_state()
            assert await store.load_states() == expected

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder) / "monitor.db"))


# --- agents --------------------------------------------------------------------------------------


async def test_roster_sync_upserts_agents_and_marks_departures(store: Store) -> None:
    """upsert_agents stores every detail (updating known agents); departures become inactive."""
    await store.write([tr("a1", "IDLE", T0)])
    ann = Agent(
        id="a1",
        name="Ann",
        email="ann@example.com",
        division_id="d1",
        division_name="North",
        department="Sales",
        manager_id="m1",
        queue_ids=("q1", "q2"),
    )
    bob = Agent(id="a2", name="Bob")
    await store.upsert_agents([ann, bob], T0)
    assert await store.agents() == [ann, bob]
    assert await store.mark_agents_inactive(["a2", "never-seen"], T0 + 1) == 1
    agents = {agent.id: agent for agent in await store.agents()}
    assert agents["a2"].state == "inactive"
    assert agents["a1"].state == "active"
    # Agents keep their keys: transitions of an upserted agent join to it.
    await store.write([tr("a2", "IDLE", T0)])
    assert {row["agent_id"] for row in await export(store)} == {"a1", "a2"}


# --- gaps ----------------------------------------------------------------------------------------


async def test_gaps_are_recorded_and_queried_by_overlap(store: Store) -> None:
    """gaps() returns the gaps overlapping the window; recording a channel's gap again extends it."""
    await store.record_gap(Gap("ch-1", T0, T0 + 1000, "socket closed"))
    await store.record_gap(Gap("ch-2", T0 + 5000, T0 + 6000, "heartbeat missed"))
    await store.record_gap(Gap("ch-1", T0, T0 + 2000, "socket closed"))
    assert await store.gaps() == [
        Gap("ch-1", T0, T0 + 2000, "socket closed"),
        Gap("ch-2", T0 + 5000, T0 + 6000, "heartbeat missed"),
    ]
    assert await store.gaps(T0 + 3000, T0 + 5500) == [
        Gap("ch-2", T0 + 5000, T0 + 6000, "heartbeat missed")
    ]
    assert await store.gaps(T0 + 7000, T0 + 9000) == []
    with pytest.raises(ValueError, match="before it starts"):
        await store.record_gap(Gap("ch-3", T0 + 10, T0, "backwards"))


# --- pruning -------------------------------------------------------------------------------------


async def test_prune_deletes_old_rows_but_keeps_what_current_state_needs(tmp_path: Path) -> None:
    """Old transitions and gaps go in chunks, and their rows in the per-agent index with them;
    the transition behind each current state stays."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        old = [tr(f"a{n % 5}", f"S{n}", T0 + n) for n in range(50)]  # each agent's last is current
        quiet = [tr("a9", "OFF_QUEUE", T0 + 1)]  # an agent whose only transition is old
        recent = [tr("a0", "IDLE", T0 + 10 * DAY)]
        await store.write(old + quiet + recent)
        await store.record_gap(Gap("ch-1", T0, T0 + 10, "old"))
        await store.record_gap(Gap("ch-1", T0 + 10 * DAY, T0 + 10 * DAY + 5, "new"))
        states = await store.load_states()
        await store.index_hours(T0 + 11 * DAY)

        deleted = await store.prune(T0 + DAY, chunk=7)

        # a0's current state is the recent one, so all of a0's old transitions go;
        # a1..a4 keep their newest old transition, a9 keeps its only one.
        assert deleted == (50 - 4) + 1
        assert await store.load_states() == states
        kept = await export(store)
        assert sorted((row["agent_id"], row["to"]) for row in kept) == [
            ("a0", "IDLE"),
            ("a1", "S46"),
            ("a2", "S47"),
            ("a3", "S48"),
            ("a4", "S49"),
            ("a9", "OFF_QUEUE"),
        ]
        assert await store.gaps() == [Gap("ch-1", T0 + 10 * DAY, T0 + 10 * DAY + 5, "new")]
        assert (await store.stats()).transitions == 6
        assert await store.prune(T0 + DAY, chunk=7) == 0
        await store.rebuild_current_state()
        assert await store.load_states() == states
    assert count(path) == 6
    _, index, before = indexed(path)
    assert len(index) == 6
    assert index == before


async def test_prune_rebuilds_a_lost_current_state_before_deleting(tmp_path: Path) -> None:
    """With current_state emptied, prune first rebuilds it, so agents' states survive."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        await store.write([tr("a1", "IDLE", T0), tr("a1", "INTERACTING", T0 + 1)])
        states = await store.load_states()
    with contextlib.closing(raw(path)) as conn:
        conn.execute("DELETE FROM current_state")
    async with await Store.open(path) as store:
        assert await store.prune(T0 + DAY) == 1
        assert await store.load_states() == states


async def test_writes_go_between_prune_chunks(store: Store) -> None:
    """A write waiting while prune runs is committed before prune's next chunk, not after all."""
    await store.write([tr(f"a{n % 10}", f"S{n}", T0 + n) for n in range(400)])
    await store.write([tr(f"a{n}", "IDLE", T0 + DAY + n) for n in range(10)])
    before = (await store.stats()).transitions
    pruning = asyncio.create_task(store.prune(T0 + DAY, chunk=1))

    async def progressed() -> bool:
        return (await store.stats()).transitions < before

    await eventually(progressed, within=10, message="prune started")
    assert await store.write([tr("b1", "IDLE", T0 + 2 * DAY)]) == 1
    assert not pruning.done()
    assert await pruning == 400
    assert (await store.stats()).transitions == 11


# --- backups and checks ----------------------------------------------------------------------------


async def test_backup_writes_a_checked_copy_and_never_overwrites(tmp_path: Path) -> None:
    """backup() produces a database that opens with the same data; an existing target is refused."""
    path = tmp_path / "monitor.db"
    copy = tmp_path / "backups" / "monitor-copy.db"
    async with await Store.open(path) as store:
        await store.write([tr(f"a{n}", "IDLE", T0 + n) for n in range(100)])
        await store.upsert_agents([Agent("a1", "Ann")], T0)
        await store.backup(copy)
        states = await store.load_states()
        rows = await export(store)
        with pytest.raises(StoreError, match="exists"):
            await store.backup(copy)
    async with await Store.open(copy) as restored:
        assert await restored.integrity_check() == "ok"
        assert await restored.version() == SCHEMA_VERSION
        assert await restored.load_states() == states
        assert await export(restored) == rows
        assert (await restored.stats()).transitions == 100


async def test_integrity_check_reports_ok(store: Store) -> None:
    """A healthy database reports "ok"."""
    await store.write([tr("a1", "IDLE", T0)])
    assert await store.integrity_check() == "ok"


async def test_stats_count_rows_and_measure_the_file(store: Store) -> None:
    """stats() gives row counts, the file sizes and the oldest transition time."""
    empty = await store.stats()
    assert (empty.transitions, empty.agents, empty.oldest_transition_ms) == (0, 0, None)
    await store.write([tr("a1", "IDLE", T0 + 5), tr("a2", "IDLE", T0 + 1)])
    await store.record_gap(Gap("ch", T0, T0 + 1, "x"))
    stats = await store.stats()
    assert (stats.transitions, stats.agents, stats.gaps, stats.actions) == (2, 2, 1, 0)
    assert stats.oldest_transition_ms == T0 + 1
    assert stats.file_bytes + stats.wal_bytes > 0


# --- export --------------------------------------------------------------------------------------


async def test_export_filters_by_time_and_agent_in_event_time_order(store: Store) -> None:
    """export() yields [since, until) in event-time order, optionally for one agent only."""
    # Written out of order, over several hours and days.
    times = [5 * DAY, 3, 2 * DAY + 7, 1, 3600_000 * 5, 4 * DAY, 2, 3 * DAY]
    await store.write([tr(f"a{n % 3}", "IDLE", T0 + at) for n, at in enumerate(times)])
    everything = await export(store)
    assert [row["event_time"] for row in everything] == [iso_ms(T0 + at) for at in sorted(times)]
    assert all(tuple(row) == EXPORT_COLUMNS for row in everything)
    window = await export(store, T0 + 2, T0 + 4 * DAY)
    assert [row["event_time"] for row in window] == [
        iso_ms(T0 + at) for at in sorted(times) if 2 <= at < 4 * DAY
    ]
    for agent in ("a0", "a1", "a2"):
        mine = await export(store, None, None, agent)
        assert [row["event_time"] for row in mine] == [
            iso_ms(T0 + at)
            for n, at in sorted(enumerate(times), key=lambda p: p[1])
            if f"a{n % 3}" == agent
        ]
        assert {row["agent_id"] for row in mine} == {agent}
    assert await export(store, T0 + 2, T0 + 3 * DAY, "a1") == [
        row
        for row in window
        if row["agent_id"] == "a1" and row["event_time"] < iso_ms(T0 + 3 * DAY)
    ]
    assert await export(store, None, None, "nobody") == []
    assert await export(store, T0 + DAY, T0 + DAY) == []


async def test_export_rows_have_the_documented_shape(store: Store) -> None:
    """Each row carries ids, kind, from, to, definition id, ISO-8601 UTC times with ms, and source."""
    await store.write(
        [
            tr(
                "a1",
                "ON_QUEUE",
                T0 + 123,
                kind=Kind.PRESENCE,
                definition="def-q",
                seen_ms=T0 + 1456,
                source=Source.SNAPSHOT,
                from_value="AVAILABLE",
            )
        ]
    )
    assert await export(store) == [
        {
            "agent_id": "a1",
            "kind": "presence",
            "from": "AVAILABLE",
            "to": "ON_QUEUE",
            "presence_definition_id": "def-q",
            "event_time": "2026-01-01T00:00:00.123Z",
            "seen_time": "2026-01-01T00:00:01.456Z",
            "source": "snapshot",
        }
    ]


async def test_export_streams_one_snapshot_while_writes_go_on(store: Store) -> None:
    """An export in progress does not block writes, and does not see rows committed after it began."""
    await store.write([tr(f"a{n % 50}", f"S{n}", T0 + n) for n in range(3000)])
    async with contextlib.aclosing(store.export(chunk=100)) as rows:
        first = await anext(rows)
        # The export holds its snapshot open; the writer commits meanwhile.
        assert await store.write([tr("late-comer", "IDLE", T0 + 1)]) == 1
        rest = [row async for row in rows]
    assert first["event_time"] == iso_ms(T0)
    assert len(rest) == 2999
    assert "late-comer" not in {row["agent_id"] for row in rest}
    assert len(await export(store)) == 3001


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.integers(0, 253_402_300_799_999),  # up to the last millisecond of 9999
            st.integers(1_500_000_000_000, 2_000_000_000_000),
            st.integers(1_700_000_000, 1_800_000_000).map(lambda s: s * 1000 + 999),
        ),
        min_size=1,
        max_size=30,
        unique=True,
    )
)
def test_exported_times_are_exact_to_the_millisecond(times: list[int]) -> None:
    """Exported event and seen times are the ISO-8601 UTC form of the stored milliseconds."""

    async def scenario(path: Path) -> list[ExportRow]:
        async with await Store.open(path) as store:
            await store.write([tr("a1", "IDLE", at, seen_ms=at) for at in times])
            return await export(store)

    with tempfile.TemporaryDirectory() as folder:
        rows = asyncio.run(scenario(Path(folder) / "monitor.db"))
    expected = [iso_ms(at) for at in sorted(times)]
    assert [row["event_time"] for row in rows] == expected
    assert [row["seen_time"] for row in rows] == expected


async def test_batches_join_the_lane_only_while_no_other_caller_waits(store: Store) -> None:
    """A read asked for while batches are being written goes before the batches asked for
    after it, and every batch is written."""
    done: list[str] = []

    async def write(name: str, n: int) -> None:
        await store.write([tr(f"agent-{n}-{i}", "IDLE", T0 + i) for i in range(200)])
        done.append(name)

    async def read() -> None:
        await store.stats()
        done.append("read")

    first = asyncio.create_task(write("first", 1))
    second = asyncio.create_task(write("second", 2))
    await asyncio.sleep(0)
    reading = asyncio.create_task(read())
    await asyncio.sleep(0)
    third = asyncio.create_task(write("third", 3))
    await asyncio.gather(first, second, reading, third)
    assert done == ["first", "second", "read", "third"]
    assert (await store.stats()).transitions == 600


def test_a_checked_batch_is_not_checked_again_and_anything_else_is() -> None:
    """check_transitions returns a Checked batch as it is, and checks every other sequence."""
    good = Transition("a1", Kind.ROUTING, None, "IDLE", None, 1, 2, Source.LIVE)
    checked = check_transitions([good])
    assert type(checked) is Checked
    assert check_transitions(checked) is checked
    with pytest.raises(ValueError, match="transition 1"):
        check_transitions([good, good._replace(event_ms=-1)])


# --- the per-agent index -----------------------------------------------------------------------

HOUR = 3_600_000


def indexed(path: Path) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
    """(agent_index_until, the index's (agent, id) rows, the (agent, id) of every transition
    before that time), read from the file."""
    with contextlib.closing(raw(path)) as conn:
        (until,) = conn.execute("SELECT until_ms FROM agent_index_until").fetchone()
        index = conn.execute("SELECT agent, id FROM agent_index ORDER BY id").fetchall()
        before = conn.execute(
            "SELECT agent, id FROM transitions WHERE event_ms < ? ORDER BY id", (until,)
        ).fetchall()
    return until, index, before


async def agent_marks(path: Path, agent: str, since: int, until: int) -> list[tuple[str, int, str]]:
    """report_reads.marks of `agent` in [since, until), as (kind, event time, value), sorted."""
    async with aiosqlite.connect(path) as conn:
        key = await scalar(conn, "SELECT key FROM agents WHERE id = ?", (agent,))
        if key is None:
            return []
        found = await report_reads.marks(conn, int(key), since, until)
    return sorted((m.kind, m.event_ms, m.value) for m in found)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.one_of(
            # A batch: (agent, minutes after T0, value) triples, over five hours.
            st.lists(
                st.tuples(
                    st.sampled_from(["a1", "a2", "a3"]),
                    st.integers(0, 5 * 60),
                    st.sampled_from(["IDLE", "INTERACTING", "OFF_QUEUE"]),
                ),
                min_size=1,
                max_size=15,
            ),
            # Index the hours that ended by this many minutes after T0.
            st.integers(0, 6 * 60),
        ),
        min_size=1,
        max_size=12,
    ),
    window=st.tuples(st.integers(0, 6 * 60), st.integers(0, 6 * 60)),
)
def test_reads_by_agent_find_the_same_rows_however_far_the_index_has_got(
    steps: list[list[tuple[str, int, str]] | int], window: tuple[int, int]
) -> None:
    """Whatever hours agent_index holds, and whatever arrived after them, an agent's export and
    report marks hold exactly its rows, and the index holds every transition before its mark."""
    since, until = T0 + min(window) * 60_000, T0 + max(window) * 60_000

    async def scenario(path: Path) -> None:
        async with await Store.open(path) as store:
            for step in steps:
                if isinstance(step, int):
                    await store.index_hours(T0 + step * 60_000)
                else:
                    await store.write(
                        [tr(a, v, T0 + m * 60_000 + n) for n, (a, m, v) in enumerate(step)]
                    )
            everything = await export(store)
            for agent in ("a1", "a2", "a3"):
                mine = [row for row in everything if row["agent_id"] == agent]
                assert await export(store, None, None, agent) == mine
                expected = sorted(
                    (row["kind"], parse_iso_ms(row["event_time"]), row["to"])
                    for row in mine
                    if since <= parse_iso_ms(row["event_time"]) < until
                )
                assert await agent_marks(path, agent, since, until) == expected
        mark, index, before = indexed(path)
        assert mark % HOUR == 0
        assert index == before

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(scenario(Path(folder) / "monitor.db"))


async def test_hours_are_indexed_once_over_and_late_rows_join_at_once(tmp_path: Path) -> None:
    """index_hours takes every hour that ended by the time given, in one pass per hour that
    holds rows; a transition older than the mark joins the index as it is written."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        await store.write([tr("a1", "IDLE", T0 + 10), tr("a2", "IDLE", T0 + 5 * HOUR + 10)])
        await store.write([tr("a1", "OFF_QUEUE", T0 + 6 * HOUR + 1)])
        assert await store.index_hours(T0 + 6 * HOUR + 30 * 60_000) == 2
        assert indexed(path)[0] == T0 + 6 * HOUR
        assert await store.index_hours(T0 + 6 * HOUR + 59 * 60_000) == 0
        # A snapshot's transition from an indexed hour, and its replay.
        for _ in range(2):
            await store.write([tr("a3", "IDLE", T0 + 2 * HOUR, source=Source.SNAPSHOT)])
        _, index, before = indexed(path)
        assert len(index) == 3
        assert index == before
        assert [r["to"] for r in await export(store, None, None, "a1")] == ["IDLE", "OFF_QUEUE"]


async def test_a_large_snapshot_from_indexed_hours_joins_the_index_whole(tmp_path: Path) -> None:
    """A snapshot batch of thousands of transitions older than the index's mark (several
    statements' worth, presence and routing, some replayed, some already there) puts exactly
    its rows into agent_index, each once."""
    path = tmp_path / "monitor.db"
    async with await Store.open(path) as store:
        await store.write([tr("a0", "IDLE", T0 + 3 * HOUR)])
        assert await store.index_hours(T0 + 3 * HOUR) == 0
        snapshot = [
            tr(
                f"s{n % 700}",
                "BREAK" if n % 3 else "IDLE",
                T0 + n * 1000,
                kind=Kind.PRESENCE if n % 3 else Kind.ROUTING,
                definition="def-break" if n % 3 else None,
                source=Source.SNAPSHOT,
            )
            for n in range(2_500)
        ]
        await store.write(snapshot[:300])
        await store.write(snapshot)
        mark, index, before = indexed(path)
        assert mark == T0 + 3 * HOUR
        assert len(index) == len(before) == 2_500
        assert index == before


async def test_a_version_1_database_is_migrated_with_its_rows_indexed(tmp_path: Path) -> None:
    """Opening a database of schema version 1 moves its rows into agent_index, all but the
    newest hour's, and drops the old per-agent index; reads by agent find every row."""
    path = tmp_path / "monitor.db"
    with contextlib.closing(raw(path)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO agents (key, id) VALUES (?, ?)", [(1, "a1"), (2, "a2")])
        conn.executemany(
            "INSERT INTO transitions (agent, kind, to_value, event_ms, seen_ms, source)"
            " VALUES (?, 'routing', 'IDLE', ?, ?, 'live')",
            [(1 + n % 2, T0 + n * 1_000_000, T0 + n * 1_000_000) for n in range(20)],
        )
    async with await Store.open(path) as store:
        assert await store.version() == SCHEMA_VERSION
        newest = T0 + 19 * 1_000_000
        mark, index, before = indexed(path)
        assert mark == newest // HOUR * HOUR
        assert index == before
        assert 0 < len(index) < 20
        for agent, first in (("a1", 0), ("a2", 1)):
            rows = await export(store, None, None, agent)
            assert [parse_iso_ms(r["event_time"]) for r in rows] == [
                T0 + n * 1_000_000 for n in range(first, 20, 2)
            ]
    assert (
        count(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'transitions_agent_hour'") == 0
    )
