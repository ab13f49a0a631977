"""The daemon through the failures Genesys can throw at it, each over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import httpx
import structlog.testing

from monitor.core.model import Gap, Kind, Presence, RoutingStatus, Source, Transition
from monitor.core.timefmt import parse_iso_ms
from monitor.roster import RosterSource
from monitor.sim.org import Org
from monitor.sim.server import Simulator
from tests.daemon import Running, running, sim_settings
from tests.metrics_util import sample
from tests.support import eventually


def churn(org: Org, rng: random.Random, count: int) -> None:
    """`count` random presence changes (with routing following On Queue)."""
    agents = [a for a in org.agents if org.agents[a].state == "active"]
    presences = [Presence.ON_QUEUE, Presence.AVAILABLE, Presence.BREAK, Presence.MEAL]
    for _ in range(count):
        agent = rng.choice(agents)
        org.set_system_presence(agent, rng.choice(presences), cause="test")
        if org.presence_of(org.agents[agent]) is Presence.ON_QUEUE and rng.random() < 0.5:
            org.set_routing(agent, RoutingStatus.INTERACTING, cause="test")


async def recorded_exactly_once(run: Running) -> None:
    """Every change the org made is one row in the database, no more, no less."""
    truth = {
        (c.agent_id, c.kind.value, c.event_ms, c.value)
        for c in run.sim.org.truth
        if c.is_transition
    }
    rows = [
        (r["agent_id"], r["kind"], r["event_time"], r["to"])
        async for r in run.daemon.store.export(None, None, None)
        if r["from"] is not None and r["from"] != r["to"]
    ]
    recorded = [(a, k, parse_iso_ms(t), v) for a, k, t, v in rows]
    assert len(recorded) == len(set(recorded)), "a change was recorded twice"
    assert set(recorded) == truth


async def test_duplicated_reordered_and_malformed_frames(tmp_path: Path) -> None:
    """Duplicates and reordering change nothing; malformed frames are counted, never fatal."""
    async with running(tmp_path) as run:
        run.sim.duplicate_frames(0.3)
        run.sim.reorder_frames(0.3)
        run.sim.malformed_frames(0.2)
        churn(run.sim.org, random.Random(3), 200)
        await run.converged()
        await recorded_exactly_once(run)
        m = run.daemon.metrics
        assert sample(m, "monitor_frames_received_total", frame="invalid") > 0
        assert sample(m, "monitor_updates_dropped_total", reason="duplicate") > 0


async def test_silent_socket_is_pinged_then_replaced(tmp_path: Path) -> None:
    """No heartbeat and no pong: the watchdog declares the socket dead and reconnects."""
    async with running(
        tmp_path,
        MONITOR_CHANNELS__PING_AFTER_S="0.2",
        MONITOR_CHANNELS__PONG_TIMEOUT_S="0.2",
    ) as run:
        m = run.daemon.metrics
        run.sim.stop_heartbeats()
        await eventually(
            lambda: sample(m, "monitor_channel_reconnects_total", reason="dead") >= 1, within=10
        )
        run.sim.stop_heartbeats(False)
        churn(run.sim.org, random.Random(4), 20)
        await run.converged()


async def test_revoked_token_kills_channels_and_the_daemon_recovers(tmp_path: Path) -> None:
    """A revoked token takes its channels with it; a new token and new channels follow."""
    async with running(tmp_path) as run:
        before = {slot.channel_id for slot in run.daemon.pool.slots.values()}
        run.sim.revoke_tokens()
        churn(run.sim.org, random.Random(5), 30)
        await eventually(
            lambda: all(
                s.up and s.channel_id not in before for s in run.daemon.pool.slots.values()
            ),
            within=10,
        )
        await run.converged()


async def test_channel_expiry_rolls_over_to_a_new_channel_first(tmp_path: Path) -> None:
    """Before a channel expires a new one is made, subscribed and reconciled; no gap."""
    async with running(
        tmp_path,
        sim_settings(channel_ttl_s=3, subscribe_extends_expiry=False),
        MONITOR_CHANNELS__ROLLOVER_BEFORE_EXPIRY_S="2",
    ) as run:
        m = run.daemon.metrics
        first = {slot.channel_id for slot in run.daemon.pool.slots.values()}
        await eventually(
            lambda: sample(m, "monitor_channel_rollovers_total", reason="expiry") >= 1, within=10
        )
        assert {slot.channel_id for slot in run.daemon.pool.slots.values()}.isdisjoint(first)
        churn(run.sim.org, random.Random(6), 20)
        await run.converged()
        assert await run.daemon.store.gaps() == []


async def test_token_refresh_rolls_channels_to_the_new_token(tmp_path: Path) -> None:
    """A token about to expire is replaced, and channels move to the new token in time."""
    async with running(
        tmp_path,
        sim_settings(token_lifetime_s=4),
        MONITOR_CHANNELS__TOKEN_REFRESH_BEFORE_S="2",
    ) as run:
        m = run.daemon.metrics
        await eventually(
            lambda: sample(m, "monitor_channel_rollovers_total", reason="token") >= 2, within=15
        )
        churn(run.sim.org, random.Random(7), 20)
        await run.converged()
        assert await run.daemon.store.gaps() == []


async def test_starts_through_a_429_storm_and_a_5xx_burst(tmp_path: Path) -> None:
    """Start-up waits out Retry-After and retries 5xx; it becomes ready, nothing fails."""
    # Simulated time runs 20 times faster, so the SDK's 3 s retry pauses take a blink.
    async with running(tmp_path, sim_settings(time_factor=20), wait_ready=False) as run:
        run.sim.rate_limit_storm(10.0, retry_after=5)
        run.sim.server_errors(5)
        await eventually(lambda: run.daemon.ready, within=20, message="ready")
        m = run.daemon.metrics
        assert sample(m, "monitor_api_rate_limited_total") >= 1
        churn(run.sim.org, random.Random(8), 20)
        await run.converged()


async def test_start_up_outlasts_an_outage_longer_than_its_retries(tmp_path: Path) -> None:
    """A (re)start while Genesys answers only 5xx, for longer than any one request retries, waits
    the outage out with backoff instead of exiting, and becomes ready once Genesys is back."""
    # Simulated time runs 200 times faster: the client's five minutes of retries take 1.5 s.
    async with Simulator.start(sim_settings(time_factor=200)) as sim:
        sim.server_errors(150)
        async with running(tmp_path, simulator=sim, wait_ready=False) as run:
            await eventually(lambda: run.daemon.ready, within=60, message="ready")
            assert not run.task.done()
            # Every error was served: the outage outlasted the retries of the first requests.
            assert sim.requests["GET", "/api/v2/users"] > 150
            churn(sim.org, random.Random(9), 10)
            await run.converged()


async def test_a_socket_lost_while_behind_opens_its_gap_when_it_fell_behind(
    tmp_path: Path,
) -> None:
    """Frames queued for a socket that is behind are lost when it drops; the gap begins as far
    back as the socket was behind, so every change lost lies inside it, and the snapshot after
    it brings the final state."""
    async with running(tmp_path, sim_settings(time_factor=20)) as run:
        org = run.sim.org
        # Simulated seconds: each frame sits 15 s in the queue (less than the silence after which
        # the daemon pings, since pongs wait in the same queue).
        run.sim.delay_frames(15.0)
        churn(org, random.Random(11), 5)
        await eventually(lambda: run.daemon.pool.slots and _lag_seen(run), within=20)
        churn(org, random.Random(12), 20)
        queued = set(org.truth[-20:])
        dropped_ms = run.sim.clock.now_ms()
        run.sim.delay_frames(0.0)
        run.sim.drop_all_sockets()
        await run.converged()
        gaps = await run.daemon.store.gaps()
        assert gaps, "the drop was recorded as a gap"
        start = min(g.start_ms for g in gaps)
        assert start <= dropped_ms - 10_000, "the gap begins where the socket fell behind"
        lost = [c for c in queued if c.is_transition]
        assert all(start <= c.event_ms for c in lost)


async def test_a_socket_lost_while_its_slot_is_busy_opens_its_gap_when_it_was_lost(
    tmp_path: Path,
) -> None:
    """A channel that expires while its slot is busy (reconciling a socket_closing through a 429
    storm) opens its gap when the socket was lost, not when the slot got round to it, so the
    changes made in between lie inside the gap."""
    async with running(tmp_path, sim_settings(time_factor=20)) as run:
        sim = run.sim
        channels = sim.notifications.channels
        first = {c.id: c.socket for c in channels.all()}
        # Simulated seconds: the snapshot after the socket_closing waits out the storm.
        sim.rate_limit_storm(60.0, retry_after=20)
        sim.socket_closing()
        await eventually(
            lambda: all(c.socket not in (None, first.get(c.id)) for c in channels.all()),
            message="new sockets connected",
        )
        lost_ms = sim.clock.now_ms()
        sim.expire_channels()
        # A simulated second on: what the socket had on its way when it was lost is the
        # transport's, not the slot's.
        await sim.clock.sleep(1.0)
        churn(sim.org, random.Random(13), 10)
        changed = [c for c in sim.org.truth[-10:] if c.is_transition]
        await run.converged(within=20)

        async def gone_gaps() -> list[Gap]:
            return [g for g in await run.daemon.store.gaps() if g.reason == "gone"]

        await eventually(gone_gaps, within=20, message="the expiry was recorded as a gap")
        gone = await gone_gaps()
        assert max(g.start_ms for g in gone) <= lost_ms + 2_000, "the gap begins at the loss"
        assert all(any(g.start_ms <= c.event_ms <= g.end_ms for g in gone) for c in changed), (
            "every change after the loss lies inside the gap"
        )


async def test_a_channel_lost_while_its_slot_rolls_over_opens_a_gap(tmp_path: Path) -> None:
    """A channel that dies while its slot rolls over to a new one (the loss waits for the
    rollover, and is moot after it) opens a gap from the loss to when the new channel delivers,
    so the changes made in between lie inside a gap, which the rollover's snapshot closes."""
    async with running(
        tmp_path,
        sim_settings(time_factor=20, channel_ttl_s=300),
        MONITOR_CHANNELS__ROLLOVER_BEFORE_EXPIRY_S="200",
    ) as run:
        sim = run.sim
        (channel,) = sim.notifications.channels.all()
        due_ms = channel.expires_ms - 200_000
        # Simulated seconds: the rollover's new channel waits out a storm that begins before it.
        await sim.clock.sleep(max(0.0, (due_ms - sim.clock.now_ms()) / 1000 - 5))
        sim.rate_limit_storm(60.0, retry_after=20)
        await sim.clock.sleep(10.0)
        (slot,) = run.daemon.pool.slots.values()
        assert slot.channel_id == channel.id, "still rolling over"
        lost_ms = sim.clock.now_ms()
        sim.expire_channels(channel.id)
        await sim.clock.sleep(1.0)
        churn(sim.org, random.Random(14), 10)
        changed = [c for c in sim.org.truth[-10:] if c.is_transition]
        await run.converged(within=20)

        async def covering() -> list[Gap]:
            return [
                g
                for g in await run.daemon.store.gaps()
                if g.start_ms <= lost_ms + 2_000
                and all(g.start_ms <= c.event_ms <= g.end_ms for c in changed)
            ]

        await eventually(covering, within=20, message="a gap from the loss covers the changes")


def _paged(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Running]:
    """A daemon on an org of 250 users, read in pages of 100."""
    return running(tmp_path, sim_settings(agents=250), MONITOR_GENESYS__USERS_PAGE_SIZE="100")


def _listing(sim: Simulator) -> list[str]:
    """The users in the order the listing pages them. When the first leaves between two pages of
    100, offset paging never shows the 101st."""
    return [a.id for a in sorted(sim.org.agents.values(), key=lambda a: (a.name.lower(), a.id))]


async def test_a_user_leaving_while_a_snapshot_pages_hides_no_other(tmp_path: Path) -> None:
    """Offset paging skips a user when one listed before it leaves mid-snapshot; the snapshot
    reads whoever the pages missed by id, so the change it alone could recover is recorded."""
    async with _paged(tmp_path) as run:
        sim = run.sim
        listed = _listing(sim)
        leaver, skipped = listed[0], listed[100]
        left: list[str] = []

        def leave_after_first_page(transition: Transition) -> None:
            if transition.source is Source.SNAPSHOT and not left:
                left.append(leaver)
                sim.deactivate(leaver)

        run.daemon.recorder.listen(leave_after_first_page)
        sim.drop_all_sockets()
        # Made while no socket delivers: only the snapshot can see them. The first gives the
        # first page a transition, the moment the leaver leaves.
        sim.org.set_routing(listed[1], RoutingStatus.INTERACTING, cause="test", force=True)
        sim.org.set_routing(skipped, RoutingStatus.INTERACTING, cause="test", force=True)
        await eventually(lambda: left, within=10, message="the first page was recorded")

        def recorded() -> bool:
            state = run.daemon.recorder.tracker.state(skipped, Kind.ROUTING)
            return state is not None and state.value == RoutingStatus.INTERACTING.value

        await eventually(recorded, within=10, message="the skipped user's change was recorded")


def _lag_seen(run: Running) -> bool:
    return sample(run.daemon.metrics, "monitor_event_lag_seconds_count") > 0 and (
        sample(run.daemon.metrics, "monitor_event_lag_seconds_bucket", le="10.0")
        < sample(run.daemon.metrics, "monitor_event_lag_seconds_count")
    )


async def test_healthz_reports_what_is_missing(tmp_path: Path) -> None:
    """/healthz is 503 with reasons while a channel stays down too long, 200 when all is well."""
    async with (
        running(tmp_path, MONITOR_HEALTH__CHANNEL_DOWN_S="0.3") as run,
        httpx.AsyncClient() as http,
    ):
        ok = await http.get(f"{run.url}/healthz")
        assert (ok.status_code, ok.json()["status"]) == (200, "ok")
        # Keep every reconnect failing: no channel can be checked or created.
        run.sim.server_errors(10_000)
        run.sim.drop_all_sockets()

        async def unhealthy() -> bool:
            response = await http.get(f"{run.url}/healthz")
            return response.status_code == 503 and "down for" in response.text

        await eventually(unhealthy, within=10)
        run.sim.server_errors(0)
        await eventually(lambda: run.daemon.ready and not run.daemon.health().reasons)
        healthy = await http.get(f"{run.url}/healthz")
        assert healthy.status_code == 200


async def test_roster_changes_are_picked_up_without_restart(tmp_path: Path) -> None:
    """Hired agents are subscribed and recorded; deactivated ones are dropped from metrics."""
    async with running(tmp_path, MONITOR_ROSTER__REFRESH_S="0.2") as run:
        hired = run.sim.hire(2)
        leaver = next(iter(run.sim.org.agents))
        run.sim.deactivate(leaver)
        await eventually(
            lambda: (
                set(hired) <= run.daemon.pool.watched() and leaver not in run.daemon.pool.watched()
            ),
            within=10,
        )
        await eventually(lambda: all(s.up for s in run.daemon.pool.slots.values()))
        run.sim.org.set_system_presence(hired[0], Presence.ON_QUEUE, cause="test")
        await eventually(lambda: run.state(hired[0], Kind.ROUTING) == RoutingStatus.IDLE)
        text = await run.metrics()
        assert leaver not in text
        assert hired[0] in text


async def test_a_failing_snapshot_is_retried_with_the_new_socket_kept(tmp_path: Path) -> None:
    """After a drop, a snapshot that fails is retried on its own: the new socket stays open, so
    a change made meanwhile arrives live, and the drop records one gap."""
    async with running(tmp_path) as run:
        sim = run.sim
        agent = sorted(sim.org.agents)[0]

        def heads() -> int:
            return sum(n for (method, _), n in sim.requests.items() if method == "HEAD")

        before = heads()
        with structlog.testing.capture_logs() as logs:
            sim.drop_all_sockets()
            # The channel still exists (HEAD), so the socket reopens; then the snapshot's
            # requests fail, with a status that is not retried inside the API client.
            await eventually(lambda: heads() > before, within=5)
            sim.server_errors(3, status=500)
            await eventually(lambda: sim.faults.server_errors_remaining < 3, within=5)
            sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
            await eventually(lambda: run.state(agent, Kind.PRESENCE) == Presence.BREAK, within=10)
            await run.converged()
        rows = [row async for row in run.daemon.store.export(None, None, agent)]
        assert (rows[-1]["to"], rows[-1]["source"]) == ("BREAK", Source.LIVE.value)
        failures = [e["event"] for e in logs if e["event"].endswith("_failed")]
        assert failures
        assert set(failures) == {"snapshot_failed"}
        await eventually(run.daemon.store.gaps, within=5, message="gap recorded")
        assert len(await run.daemon.store.gaps()) == 1


async def test_an_agent_the_roster_listing_skips_is_not_taken_for_a_leaver(
    tmp_path: Path,
) -> None:
    """A user leaving during the roster's offset-paged listing makes it skip another user; the
    skipped agent is read by id and stays on the roster instead of being taken for a leaver."""
    async with _paged(tmp_path) as run:
        sim = run.sim
        listed = _listing(sim)
        leaver, skipped = listed[0], listed[100]
        source = RosterSource(
            run.daemon.clients[0].api, run.daemon.settings.roster, page_size=100, with_queues=False
        )
        pages = sim.requests["GET", "/api/v2/users"]

        async def leave_after_first_page() -> None:
            # The simulator builds a page in the step that counts its request: once counted,
            # the first page is made, and the second is not asked for yet.
            while sim.requests["GET", "/api/v2/users"] == pages:  # noqa: ASYNC110 - no event marks a page
                await asyncio.sleep(0)
            sim.deactivate(leaver)

        leaving = asyncio.create_task(leave_after_first_page())
        roster = await source.fetch([a.id for a in run.daemon.roster])
        await leaving
        ids = {a.id for a in roster}
        assert skipped in ids
        # The leaver was listed on the first page, before it left; the next refresh drops it.
        assert ids == set(sim.org.agents)


async def test_a_snapshot_request_does_not_wait_for_one_already_running(tmp_path: Path) -> None:
    """A channel that comes up while another channel's snapshot is stuck retrying gets its own
    snapshot at once: a change overwritten while it waited would be lost for good."""
    async with running(tmp_path) as run:
        reconciler = run.daemon.reconciler
        agents = sorted(run.sim.org.agents)
        # The next request fails with a 503 and is retried 3 s later.
        run.sim.server_errors(1, status=503)
        first = asyncio.create_task(reconciler.reconcile(agents[:5]))
        await eventually(lambda: run.sim.faults.server_errors_remaining == 0, within=5)
        await asyncio.wait_for(reconciler.reconcile(agents[5:10]), timeout=1.5)
        assert not first.done(), "the first snapshot is still waiting to retry"
        await asyncio.wait_for(first, timeout=10)
