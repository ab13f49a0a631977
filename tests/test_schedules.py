"""Scheduled presence changes against the simulator: local time across DST changes, the
selection, the guards, and restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.core.model import Presence, RoutingStatus
from monitor.sim.server import Simulator
from monitor.sim.settings import SimSettings
from tests.daemon import Running, running, sim_settings
from tests.support import eventually

FACTOR = 14_400.0  # four simulated hours a second


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def toml(schedules: list[dict[str, Any]]) -> str:
    """The schedules as `schedules = [...]` in TOML."""
    tables = ", ".join(
        "{" + ", ".join(f"{k} = {inline(v)}" for k, v in table.items()) + "}" for table in schedules
    )
    return f"schedules = [{tables}]\n"


def inline(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


FAST = {
    "MONITOR_CHANNELS__PING_AFTER_S": "43200",
    "MONITOR_CHANNELS__PONG_TIMEOUT_S": "14400",
    "MONITOR_STUCK__EVALUATE_EVERY_S": "3600",
    "MONITOR_ROSTER__REFRESH_S": "86400",
    "MONITOR_ACTIONS__MAX_AGENTS": "100",
}


def fast_sim(start: str) -> SimSettings:
    return sim_settings(
        start_ms=utc_ms(start),
        time_factor=FACTOR,
        heartbeat_interval_s=14_400,
        channel_ttl_s=30 * 86_400,
        token_lifetime_s=30 * 86_400,
        timezone="Europe/Berlin",
    )


async def runs(run: Running, name: str) -> list[int]:
    rows = await run.daemon.store._fetch(
        "test", "SELECT due_ms FROM schedule_runs WHERE schedule = ? ORDER BY due_ms", (name,)
    )
    return [row[0] for row in rows]


async def recorded(run: Running, name: str, count: int) -> list[int]:
    """The due times of `name`'s runs once `count` are recorded: a run is recorded after its
    changes are made, which under load can take longer than the simulated minutes waited."""

    async def enough() -> list[int]:
        due = await runs(run, name)
        return due if len(due) >= count else []

    return await eventually(enough, message=f"{count} runs of {name}")


async def until(run: Running, moment_ms: int) -> None:
    await run.sim.clock.sleep((moment_ms - run.sim.clock.now_ms()) / 1000)


@pytest.mark.parametrize(
    ("start", "end", "evening", "night"),
    [
        # Spring forward on 29 March 2026: 02:30 does not exist, it runs at 03:00 CEST.
        (
            "2026-03-28T18:00:00",
            "2026-03-29T21:30:00",
            ["2026-03-28T22:00:00", "2026-03-29T21:00:00"],
            ["2026-03-29T01:00:00"],
        ),
        # Fall back on 25 October 2026: 02:30 happens twice, it runs once, at the first.
        (
            "2026-10-24T17:00:00",
            "2026-10-25T22:30:00",
            ["2026-10-24T21:00:00", "2026-10-25T22:00:00"],
            ["2026-10-25T00:30:00"],
        ),
    ],
    ids=["spring", "autumn"],
)
async def test_local_times_across_dst(
    tmp_path: Path, start: str, end: str, evening: list[str], night: list[str]
) -> None:
    """Schedules fire at their local time on both sides of a DST change, once each."""
    schedules = toml(
        [
            {
                "name": "evening",
                "cron": "0 23 * * *",
                "timezone": "Europe/Berlin",
                "to": "Offline",
                "select": {"presence": ["On Queue"]},
            },
            {
                "name": "night",
                "cron": "30 2 * * *",
                "timezone": "Europe/Berlin",
                "to": "Offline",
                "select": {"presence": ["Available"]},
                "dry_run": True,
            },
        ]
    )
    async with running(tmp_path, fast_sim(start), toml=schedules, env=FAST) as run:
        await until(run, utc_ms(end))
        assert await recorded(run, "evening", len(evening)) == [utc_ms(t) for t in evening]
        assert await recorded(run, "night", len(night)) == [utc_ms(t) for t in night]


async def test_end_of_day_reset_changes_exactly_the_selection(tmp_path: Path) -> None:
    """At 23:00 local, agents On Queue or Available go Offline, unless interacting; nobody else
    is touched."""
    schedules = toml(
        [
            {
                "name": "end-of-day",
                "cron": "0 23 * * *",
                "timezone": "Europe/Berlin",
                "to": "Offline",
                "select": {"presence": ["On Queue", "Available"]},
            }
        ]
    )
    async with running(tmp_path, fast_sim("2026-06-01T17:00:00"), toml=schedules, env=FAST) as run:
        org = run.sim.org
        ids = list(org.agents)
        on_queue, available, interacting, on_break = ids[:4]
        org.set_system_presence(on_queue, Presence.ON_QUEUE, cause="test")
        org.set_system_presence(available, Presence.AVAILABLE, cause="test")
        org.set_system_presence(interacting, Presence.ON_QUEUE, cause="test")
        org.set_routing(interacting, RoutingStatus.INTERACTING, cause="test")
        org.set_system_presence(on_break, Presence.BREAK, cause="test")
        await until(run, utc_ms("2026-06-01T21:30:00"))
        await recorded(run, "end-of-day", 1)
        presence = {a: org.presence_of(org.agent(a)) for a in ids[:4]}
        assert presence == {
            on_queue: Presence.OFFLINE,
            available: Presence.OFFLINE,
            interacting: Presence.ON_QUEUE,
            on_break: Presence.BREAK,
        }
        audit = await run.daemon.store.actions()
        assert {(r.agent_id, r.outcome) for r in audit} == {
            (on_queue, "changed"),
            (available, "changed"),
            (interacting, "skipped_interacting"),
        }
        assert {r.actor for r in audit} == {"schedule:end-of-day"}


@pytest.mark.parametrize(("policy", "expected"), [("skip", "missed"), ("run", "ok")])
async def test_a_run_missed_while_down_follows_the_catch_up_policy(
    tmp_path: Path, policy: str, expected: str
) -> None:
    """A restart after the due time: the missed run is skipped and noted, or run once if late
    by less than the limit; a run already done is never repeated."""
    schedule = {"name": "reset", "cron": "0 23 * * *", "timezone": "Europe/Berlin",
                "to": "Offline", "select": {"presence": ["On Queue"]}, "catch_up": policy,
                "catch_up_within": "2h"}  # fmt: skip
    settings = fast_sim("2026-06-01T17:00:00")
    async with running(tmp_path, settings, toml=toml([schedule]), env=FAST) as run:
        await until(run, utc_ms("2026-06-01T21:10:00"))
        assert await recorded(run, "reset", 1) == [utc_ms("2026-06-01T21:00:00")]
    # Down across the next day's 23:00, back 30 minutes later.
    later = fast_sim("2026-06-02T21:30:00")
    async with Simulator.start(later) as sim2:
        agent = next(iter(sim2.org.agents))
        sim2.org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        async with running(tmp_path, simulator=sim2, toml=toml([schedule]), env=FAST) as run:
            due = utc_ms("2026-06-02T21:00:00")
            await recorded(run, "reset", 2)
            last = await run.daemon.store.last_schedule_run("reset")
            assert last is not None
            assert (last[0], last[2]) == (due, expected)
            assert await runs(run, "reset") == [utc_ms("2026-06-01T21:00:00"), due]
            changed = sim2.org.presence_of(sim2.org.agent(agent)) is Presence.OFFLINE
            assert changed == (policy == "run")
