"""Status-time and agent-timeline reports on real SQLite files, and `monitor report`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.core.model import Agent, Gap, Kind, Source, Transition
from monitor.core.statustime import day_start_ms
from monitor.store import Store
from monitor.store import report_reads as reads
from monitor.store.agent_day import UnknownAgent, agent_timeline, find_agent
from monitor.store.report_cache import CacheChanged, ReportCache, cache_path
from monitor.store.reports import StatusTimeReport, status_time
from tests.support import scaled

BERLIN = ZoneInfo("Europe/Berlin")
TZ = "Europe/Berlin"
HOUR_S = 3600.0
DAY = date(2026, 3, 2)  # a Monday
FAR = day_start_ms(date(2027, 1, 1), BERLIN)  # "now", long after every day reported


def at(text: str) -> int:
    """Epoch ms of a Berlin wall time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp() * 1000)


def tr(
    agent: str,
    to: str,
    when: int,
    kind: Kind = Kind.PRESENCE,
    *,
    late: bool = False,
    definition: str | None = None,
) -> Transition:
    return Transition(agent, kind, None, to, definition, when, when + 7, Source.LIVE, late)


AGENTS = [
    Agent("a", "Ada", "ada@example.com", "div-s", "Sales", queue_ids=("q1", "q2")),
    Agent("b", "Bob", "bob@example.com", "div-u", "Support", queue_ids=("q2",)),
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "monitor.db") as opened:
        await opened.upsert_agents(AGENTS, at("2026-03-01T00:00"))
        yield opened


async def working_day(store: Store) -> None:
    """Ada: offline overnight, on queue 08:00, break 12:00-12:30, offline at 17:00.
    Bob: on queue all day from the evening before."""
    await store.write(
        [
            tr("a", "OFFLINE", at("2026-03-01T20:00")),
            tr("b", "ON_QUEUE", at("2026-03-01T21:00")),
            tr("a", "ON_QUEUE", at("2026-03-02T08:00")),
            tr("a", "BREAK", at("2026-03-02T12:00")),
            tr("a", "ON_QUEUE", at("2026-03-02T12:30")),
            tr("a", "OFFLINE", at("2026-03-02T17:00")),
        ]
    )


Figures = tuple[float, float, int, float]


def table(report: StatusTimeReport, *keys: str) -> dict[tuple[str, ...], Figures]:
    """(group values..., kind, status) -> (seconds, uncertain, transitions, longest)."""
    return {
        (*(row.group[k] for k in keys), row.kind, row.status): (
            row.totals.ms / 1000,
            row.totals.uncertain_ms / 1000,
            row.totals.entries,
            row.totals.longest_ms / 1000,
        )
        for row in report.rows
    }


async def by_agent(store: Store, now: int = FAR, **kwargs: bool) -> dict[tuple[str, ...], Figures]:
    return table(await status_time(store, DAY, DAY, TZ, now, ["agent"], **kwargs), "agent_id")


# --- status time ------------------------------------------------------------------------------------


async def test_time_transitions_and_longest_stretch_per_status(store: Store) -> None:
    """Each status gets its time, the transitions into it and its longest stretch in the day."""
    await working_day(store)
    rows = await by_agent(store)
    assert rows[("a", "presence", "ON_QUEUE")] == (8.5 * HOUR_S, 0.0, 2, 4.5 * HOUR_S)
    assert rows[("a", "presence", "BREAK")] == (0.5 * HOUR_S, 0.0, 1, 0.5 * HOUR_S)
    # Carried in at midnight (no transition), and entered again at 17:00.
    assert rows[("a", "presence", "OFFLINE")] == (15 * HOUR_S, 0.0, 1, 8 * HOUR_S)
    assert rows[("b", "presence", "ON_QUEUE")] == (24 * HOUR_S, 0.0, 0, 24 * HOUR_S)
    report = await status_time(store, DAY, DAY, TZ, FAR, ["agent"])
    assert report.rows[0].group == {"agent_id": "a", "agent_name": "Ada"}


async def test_days_of_23_and_25_hours(store: Store) -> None:
    """Per day in Berlin, the DST days hold 23 and 25 hours of the status in force."""
    await store.write([tr("b", "OFFLINE", at("2026-03-01T20:00"))])
    spring = await status_time(store, date(2026, 3, 28), date(2026, 3, 30), TZ, FAR, ["day"])
    assert [row.totals.ms / 1000 / HOUR_S for row in spring.rows] == [24, 23, 24]
    autumn = await status_time(store, date(2026, 10, 24), date(2026, 10, 26), TZ, FAR, ["day"])
    assert [(row.group["day"], row.totals.ms / 1000 / HOUR_S) for row in autumn.rows] == [
        ("2026-10-24", 24),
        ("2026-10-25", 25),
        ("2026-10-26", 24),
    ]


async def test_gap_time_is_uncertain_for_the_agents_it_concerns(store: Store) -> None:
    """A channel gap makes its agents' time uncertain; a monitor-wide gap everyone's."""
    await working_day(store)
    await store.record_gap(
        Gap("ch-1", at("2026-03-02T10:00"), at("2026-03-02T10:15"), "closed", ("a",))
    )
    await store.record_gap(Gap("*", at("2026-03-02T20:00"), at("2026-03-02T21:00"), "down"))
    rows = await by_agent(store)
    # Ada's 08:00-12:00 stretch is cut in two by the gap: 2 h then 1 h 45.
    assert rows[("a", "presence", "ON_QUEUE")] == (8.25 * HOUR_S, 900.0, 2, 4.5 * HOUR_S)
    assert rows[("a", "presence", "OFFLINE")] == (14 * HOUR_S, HOUR_S, 1, 8 * HOUR_S)
    assert rows[("b", "presence", "ON_QUEUE")] == (23 * HOUR_S, HOUR_S, 0, 20 * HOUR_S)
    report = await status_time(store, DAY, DAY, TZ, FAR)
    assert [g.channel_id for g in report.gaps] == ["ch-1", "*"]


async def test_late_row_written_after_a_day_was_cached_is_counted(store: Store) -> None:
    """A late change that arrives after the day was reported (and cached) changes the figures."""
    await working_day(store)
    before = await by_agent(store)
    assert cache_path(store.path).exists()
    await store.write([tr("a", "BREAK", at("2026-03-02T14:00"), late=True)])
    after = await by_agent(store)
    assert before[("a", "presence", "BREAK")][:3] == (0.5 * HOUR_S, 0.0, 1)
    assert after[("a", "presence", "BREAK")] == (3.5 * HOUR_S, 0.0, 2, 3 * HOUR_S)
    assert after[("a", "presence", "ON_QUEUE")] == (5.5 * HOUR_S, 0.0, 2, 4 * HOUR_S)


async def test_gap_recorded_after_a_day_was_cached_is_counted(store: Store) -> None:
    """A gap recorded (or extended) later makes the cached day be computed again."""
    await working_day(store)
    assert (await by_agent(store))[("b", "presence", "ON_QUEUE")][1] == 0
    await store.record_gap(Gap("ch-2", at("2026-03-02T09:00"), at("2026-03-02T09:30"), "x", ("b",)))
    assert (await by_agent(store))[("b", "presence", "ON_QUEUE")][1] == 1800
    await store.record_gap(Gap("ch-2", at("2026-03-02T09:00"), at("2026-03-02T10:00"), "x", ("b",)))
    assert (await by_agent(store))[("b", "presence", "ON_QUEUE")][1] == 3600


async def test_the_day_in_progress_counts_up_to_now_and_is_not_cached(store: Store) -> None:
    """Today is cut at now, and a later report sees more of it."""
    await working_day(store)
    ten = await by_agent(store, now=at("2026-03-02T10:00"))
    eleven = await by_agent(store, now=at("2026-03-02T11:00"))
    assert ten[("a", "presence", "ON_QUEUE")][0] == 2 * HOUR_S
    assert eleven[("a", "presence", "ON_QUEUE")][0] == 3 * HOUR_S
    assert ("a", "presence", "BREAK") not in eleven
    before_it = await status_time(store, DAY, DAY, TZ, at("2026-03-01T12:00"))
    assert before_it.rows == []


async def test_monitor_silence_after_its_last_sign_of_life_is_uncertain(store: Store) -> None:
    """Time after the daemon was last alive, while it is not running, is not counted as known."""
    await working_day(store)
    await store.set_meta("alive_ms", str(at("2026-03-02T18:00")))
    rows = await by_agent(store)
    assert rows[("a", "presence", "OFFLINE")] == (9 * HOUR_S, 6 * HOUR_S, 1, 8 * HOUR_S)


async def test_grouping_by_division_queue_day_and_combined(store: Store) -> None:
    """Groups sum their agents; an agent in two queues counts in both."""
    await working_day(store)
    report = await status_time(store, DAY, DAY, TZ, FAR, ["division"])
    assert table(report, "division")[("Sales", "presence", "ON_QUEUE")][0] == 8.5 * HOUR_S
    assert table(report, "division")[("Support", "presence", "ON_QUEUE")][0] == 24 * HOUR_S
    queues = table(await status_time(store, DAY, DAY, TZ, FAR, ["queue"]), "queue")
    assert queues[("q1", "presence", "ON_QUEUE")][0] == 8.5 * HOUR_S
    assert queues[("q2", "presence", "ON_QUEUE")][0] == 32.5 * HOUR_S
    two_days = await status_time(store, DAY, DAY + timedelta(days=1), TZ, FAR, ["agent", "day"])
    cells = table(two_days, "agent_id", "day")
    assert cells[("a", "2026-03-03", "presence", "OFFLINE")] == (24 * HOUR_S, 0.0, 0, 24 * HOUR_S)
    assert cells[("a", "2026-03-02", "presence", "OFFLINE")][0] == 15 * HOUR_S
    with pytest.raises(ValueError, match="--by"):
        await status_time(store, DAY, DAY, TZ, FAR, ["team"])


async def test_opening_status_is_found_however_long_ago_it_began(store: Store) -> None:
    """The status carried into a day is found from current state or by looking back weeks."""
    await store.upsert_agents([Agent("c", "Cy"), Agent("d", "Di")], at("2026-01-01T00:00"))
    await store.write(
        [
            tr("c", "OFFLINE", at("2026-02-01T18:00")),  # still current
            tr("d", "OFFLINE", at("2026-02-10T18:00")),
            tr("d", "AVAILABLE", at("2026-03-05T08:00")),  # current state began after DAY
        ]
    )
    rows = await by_agent(store, cache=False)
    assert rows[("c", "presence", "OFFLINE")][0] == 24 * HOUR_S
    assert rows[("d", "presence", "OFFLINE")][0] == 24 * HOUR_S


async def test_openings_of_many_agents_match_their_last_rows(tmp_path: Path) -> None:
    """The status each of many agents was in as a day opens is its last row before, wherever
    that lies: the day before, weeks back, months back, or nowhere."""
    rng = random.Random(11)
    opens = at("2026-03-02T00:00")
    rows = []
    for n in range(150):
        agent = f"agent-{n:03}"
        for kind in Kind:
            values = ["IDLE", "OFF_QUEUE"] if kind is Kind.ROUTING else ["ON_QUEUE", "OFFLINE"]
            age_days = rng.choice([0, 0.5, 3, 20, 120])  # 0: nothing before the day opens
            if age_days:
                when = opens - int(age_days * 86_400_000) - rng.randrange(3_600_000)
                rows += [tr(agent, rng.choice(values), when + i, kind) for i in range(2)]
            # A change after the day opened: the current state says nothing about the opening.
            rows.append(tr(agent, rng.choice(values), opens + rng.randrange(3_600_000), kind))
    async with await Store.open(tmp_path / "m.db") as store:
        await store.write(rows)
        async with store._reader() as conn:
            found = await reads.openings(conn, opens)
    with sqlite3.connect(tmp_path / "m.db") as conn:
        expected = {
            (agent, kind): value
            for agent, kind, value in conn.execute(
                "SELECT agent, kind, (SELECT to_value FROM transitions i"
                " WHERE i.agent = o.agent AND i.kind = o.kind AND i.event_ms < ?"
                " ORDER BY event_ms DESC, to_value DESC LIMIT 1)"
                " FROM (SELECT DISTINCT agent, kind FROM transitions) o",
                (opens,),
            )
            if value is not None
        }
    assert len(expected) > 150
    assert found == expected


async def test_damaged_cache_is_rebuilt(store: Store) -> None:
    """A cache file that is not a database is replaced, and the figures stay right."""
    await working_day(store)
    first = await by_agent(store)
    cache_path(store.path).write_bytes(b"this is not a database" * 100)
    assert await by_agent(store) == first
    with sqlite3.connect(cache_path(store.path)) as conn:
        assert conn.execute("SELECT count(*) FROM days").fetchone()[0] == 1


async def test_a_day_dropped_by_another_report_is_noticed(store: Store) -> None:
    """Reading cached totals fails loudly, not silently short, if another report dropped a day."""
    await working_day(store)
    await by_agent(store)
    async with (
        ReportCache.open(cache_path(store.path)) as mine,
        ReportCache.open(cache_path(store.path)) as theirs,
    ):
        assert await mine.totals(TZ, [DAY], by_agent=True, by_day=False)
        await theirs.forget(TZ, [DAY])
        with pytest.raises(CacheChanged):
            await mine.totals(TZ, [DAY], by_agent=True, by_day=False)
        with pytest.raises(CacheChanged):
            await mine.closing(TZ, DAY)
    assert (await by_agent(store))[("b", "presence", "ON_QUEUE")][0] == 24 * HOUR_S


async def test_cached_and_fresh_reports_agree_on_random_history(tmp_path: Path) -> None:
    """Days cached piecemeal, in any order, give the same figures as a report without cache."""
    rng = random.Random(7)
    start = at("2026-03-01T00:00")
    rows = []
    for agent in "xyz":
        when = start - rng.randrange(1, 3 * 86_400_000)
        for _ in range(60):
            when += rng.randrange(1, 4 * 3_600_000)
            kind = rng.choice(list(Kind))
            value = rng.choice(
                ["IDLE", "INTERACTING", "OFF_QUEUE"]
                if kind is Kind.ROUTING
                else ["ON_QUEUE", "BREAK", "OFFLINE"]
            )
            rows.append(tr(agent, value, when, kind))
    late = [
        Transition(
            r.agent_id, r.kind, None, "MEAL", None, r.event_ms + 1, r.seen_ms, Source.SNAPSHOT, True
        )
        for r in rng.sample([r for r in rows if r.kind is Kind.PRESENCE], 10)
    ]
    async with await Store.open(tmp_path / "m.db") as store:
        await store.write(rows)
        await store.write(late)
        await store.record_gap(Gap("c", start + 5 * 3_600_000, start + 30 * 3_600_000, "x", ("y",)))
        first, last = date(2026, 3, 1), date(2026, 3, 9)
        for day in (date(2026, 3, 4), date(2026, 3, 2), date(2026, 3, 7)):
            await status_time(store, day, day, TZ, FAR, ["agent", "day"])
        cached = await status_time(store, first, last, TZ, FAR, ["agent", "day"])
        fresh = await status_time(store, first, last, TZ, FAR, ["agent", "day"], cache=False)
    assert cached.rows == fresh.rows
    assert len(cached.rows) > 50


# --- one agent's day -------------------------------------------------------------------------------


async def test_agent_timeline_has_intervals_actions_and_gaps(store: Store) -> None:
    """One agent's day: presence and routing intervals, the actions on them, the gaps."""
    await working_day(store)
    await store.write([tr("a", "IDLE", at("2026-03-02T08:00"), Kind.ROUTING)])
    await store.record_gap(
        Gap("ch-1", at("2026-03-02T10:00"), at("2026-03-02T10:15"), "closed", ("a",))
    )
    await store.record_gap(
        Gap("ch-9", at("2026-03-02T11:00"), at("2026-03-02T11:15"), "closed", ("b",))
    )
    with sqlite3.connect(store.path) as conn:
        key = conn.execute("SELECT key FROM agents WHERE id = 'a'").fetchone()[0]
        conn.execute(
            "INSERT INTO actions (at_ms, actor, agent, from_value, to_value, dry_run, outcome)"
            " VALUES (?, 'schedule:evening', ?, 'ON_QUEUE', 'OFFLINE', 0, 'done')",
            (at("2026-03-02T16:59"), key),
        )
    start, end = at("2026-03-02T00:00"), at("2026-03-03T00:00")
    timeline = await agent_timeline(store, "a", start, end, FAR)
    presence = [(i.value, i.start_ms, i.end_ms) for i in timeline.intervals if i.kind == "presence"]
    assert presence == [
        ("OFFLINE", start, at("2026-03-02T08:00")),
        ("ON_QUEUE", at("2026-03-02T08:00"), at("2026-03-02T12:00")),
        ("BREAK", at("2026-03-02T12:00"), at("2026-03-02T12:30")),
        ("ON_QUEUE", at("2026-03-02T12:30"), at("2026-03-02T17:00")),
        ("OFFLINE", at("2026-03-02T17:00"), end),
    ]
    assert timeline.intervals[0].since_ms == at("2026-03-01T20:00")
    assert [i.uncertain_ms for i in timeline.intervals if i.kind == "routing"] == [900_000]
    assert [(a.actor, a.to_value, a.outcome) for a in timeline.actions] == [
        ("schedule:evening", "OFFLINE", "done")
    ]
    assert [g.channel_id for g in timeline.gaps] == ["ch-1"]
    partial = await agent_timeline(store, "a", start, end, at("2026-03-02T09:00"))
    assert partial.intervals[-1].end_ms == at("2026-03-02T09:00")


async def test_unknown_agent_and_bad_window_are_refused(store: Store) -> None:
    """An agent not in the database, or a window ending before it starts, is an error."""
    with pytest.raises(UnknownAgent):
        await agent_timeline(store, "nobody", 0, 10, FAR)
    with pytest.raises(ValueError, match="after"):
        await agent_timeline(store, "a", 10, 10, FAR)
    assert (await find_agent(store, "BOB@example.com")).id == "b"
    assert (await find_agent(store, "ada")).id == "a"
    with pytest.raises(UnknownAgent):
        await find_agent(store, "Eve")


def files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


# --- the command line ------------------------------------------------------------------------------


async def report(*args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "report",
        *args,
        env={**os.environ, "MONITOR_CONFIG": "/nonexistent/config.toml"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), scaled(60))
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_cli_status_time_as_table_csv_and_json(store: Store) -> None:
    """`report status-time` prints an aligned table, CSV or the API's JSON."""
    await working_day(store)
    db = str(store.path)
    common = ["status-time", "--db", db, "--from", "2026-03-02", "--to", "2026-03-02", "--tz", TZ]
    code, out, _ = await report(*common)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("AGENT"))
    assert header.split() == [
        "AGENT", "NAME", "KIND", "STATUS", "TIME", "UNCERTAIN", "TRANSITIONS", "LONGEST",
    ]  # fmt: skip
    ada = next(line for line in lines if line.startswith("a ") and "ON_QUEUE" in line)
    assert ada.split()[-4:] == ["8:30:00", "-", "2", "4:30:00"]
    code, out, _ = await report(*common, "--format", "csv", "--by", "queue,day")
    assert code == 0
    parsed = list(csv.DictReader(io.StringIO(out)))
    q2 = [r for r in parsed if r["queue"] == "q2" and r["status"] == "ON_QUEUE"]
    assert q2 == [
        {
            "queue": "q2",
            "day": "2026-03-02",
            "kind": "presence",
            "status": "ON_QUEUE",
            "seconds": "117000.0",
            "uncertain_seconds": "0.0",
            "transitions": "2",
            "longest_seconds": "86400.0",
        }
    ]
    code, out, _ = await report(*common, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["timezone"] == TZ
    assert data["by"] == ["agent"]
    assert {
        "agent_id": "b",
        "agent_name": "Bob",
        "kind": "presence",
        "status": "ON_QUEUE",
    }.items() <= data["rows"][-1].items()


async def test_cli_agent_day(store: Store) -> None:
    """`report agent` shows the day in local time, found by name as well as by id."""
    await working_day(store)
    code, out, _ = await report(
        "agent", "Ada", "--db", str(store.path), "--day", "2026-03-02", "--tz", TZ
    )
    assert code == 0
    assert "Ada (a), 2026-03-02 (Europe/Berlin)" in out
    assert any(
        line.split()[:5] == ["12:00:00", "12:30:00", "0:30:00", "presence", "BREAK"]
        for line in out.splitlines()
    )
    code, out, _ = await report(
        "agent", "a", "--db", str(store.path), "--day", "2026-03-02", "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["intervals"][0]["status"] == "OFFLINE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status-time", "--from", "2026-03-09", "--to", "2026-03-02"], "before"),
        (["status-time", "--from", "2026-02-30", "--to", "2026-03-02"], "not a date"),
        (
            ["status-time", "--from", "2026-03-02", "--to", "2026-03-02", "--tz", "Mars/Olympus"],
            "time zone",
        ),
        (["status-time", "--from", "2026-03-02", "--to", "2026-03-02", "--by", "team"], "--by"),
        (["status-time", "--from", "2024-01-01", "--to", "2026-03-02"], "at most"),
        (["agent", "nobody", "--day", "2026-03-02"], "no agent"),
        (["agent", "a"], "--day"),
    ],
)
async def test_cli_usage_errors_exit_2_with_a_message(
    store: Store, args: list[str], message: str
) -> None:
    """Bad dates, zones, groupings or agents: exit 2 and a line saying what is wrong."""
    code, out, err = await report(*args, "--db", str(store.path))
    assert code == 2
    assert message in err
    assert out == ""


async def test_cli_without_a_config_or_database_is_a_clear_failure(tmp_path: Path) -> None:
    """No config file, or no database at --db: exit 2 naming the file, and nothing created."""
    dates = ["--from", "2026-03-02", "--to", "2026-03-02"]
    code, _, err = await report("status-time", *dates)
    assert code == 2
    assert "/nonexistent/config.toml" in err
    missing = tmp_path / "missing.db"
    code, _, err = await report("status-time", *dates, "--db", str(missing))
    assert code == 2
    assert f"no database at {missing}" in err
    assert files(tmp_path) == []
