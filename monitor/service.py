"""The composition root: builds the daemon from settings and supervises its tasks.

Resources are entered as async context managers (store, HTTP transport, web server); the
long-lived loops run in one TaskGroup (the channel pool, the snapshot merger, the roster sync,
token refreshers, retention). The writer runs beside that group, not in it: on shutdown the intake
stops first, then the writer drains what is queued, so a stop never loses a transition that was
already received.

Errors a loop can recover from (network, 5xx, 429, a dropped socket) are retried inside it.
Errors it cannot (refused credentials, an unknown division in the config, a corrupt database,
more agents than the OAuth clients can watch) end the run with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import structlog

from monitor import api, presence_api, schedule_config, wallboard
from monitor.actions import ActionDeps, ActionRunner, PresenceCatalog
from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.core import rules
from monitor.core.backoff import Backoff
from monitor.core.model import Agent, Gap
from monitor.core.tracker import Tracker
from monitor.errors import (
    ConfigError,
    GenesysError,
    MonitorError,
    RateLimited,
    ServerError,
    TransportError,
)
from monitor.genesys.api import GenesysApi, Transport
from monitor.genesys.auth import AccessToken, TokenSource
from monitor.genesys.channels import PoolClient, SlotDeps
from monitor.genesys.pool import ChannelPool
from monitor.metrics import Metrics
from monitor.reconcile import Reconciler
from monitor.recorder import Recorder
from monitor.roster import RosterSource
from monitor.schedules import Scheduler
from monitor.store import Store, Writer
from monitor.store.reports import status_time
from monitor.stuck import StuckWatcher
from monitor.web import Health, WebApp

log = structlog.get_logger(__name__)
T = TypeVar("T")

_DAY_S = 86_400
ALIVE_KEY = "alive_ms"
_ALIVE_EVERY_S = 30.0
# The store's per-agent index takes each hour once it has been over for a while, so that frames
# of the hour still arriving late seldom have to join it one by one (see store/schema.py).
_INDEX_EVERY_S = 300.0
_INDEX_AFTER_MS = 300_000
_WARM_DAYS = 31
# How often the event loop's lag is measured, and from what lag on it is logged as a stall.
_LOOP_TICK_S = 0.25
_LOOP_BLOCKED_S = 1.0


class StopRequested(Exception):
    """Raised inside the task group to end it when a stop is asked for."""


class ApiMetrics:
    """Feeds the REST client's observations into the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def on_response(self, route: str, status: int, seconds: float) -> None:
        self._m.api_requests.labels(route).inc()
        self._m.api_latency.observe(seconds)
        if status >= 400:
            self._m.api_errors.labels(route, str(status)).inc()

    def on_rate_limited(self, route: str, retry_after_s: float) -> None:
        self._m.api_rate_limited.inc()

    def on_transport_error(self, route: str) -> None:
        self._m.api_requests.labels(route).inc()
        self._m.api_errors.labels(route, "0").inc()


@dataclass
class Daemon:
    """Everything one running monitor is made of; `run()` drives it."""

    settings: Settings
    clock: Clock
    store: Store
    metrics: Metrics
    tracker: Tracker
    writer: Writer
    recorder: Recorder
    reconciler: Reconciler
    clients: list[PoolClient]
    pool: ChannelPool
    transport: Transport
    rng: random.Random
    roster: list[Agent]
    last_alive_ms: int | None = None
    web: WebApp = field(init=False)
    actions: ActionRunner = field(init=False)
    scheduler: Scheduler = field(init=False)
    stuck: StuckWatcher = field(init=False)
    web_port: int = 0

    @property
    def ready(self) -> bool:
        return self.pool.ready

    def health(self) -> Health:
        reasons = []
        if not self.pool.ready:
            waiting = [s.label for s in self.pool.slots.values() if not s.ever_up.is_set()]
            reasons.append(f"channels not yet subscribed and reconciled: {', '.join(waiting)}")
        limit = self.settings.health.channel_down_s
        for label, seconds in self.pool.down(self.clock.now_ms()):
            if seconds > limit:
                reasons.append(f"channel {label} down for {seconds:.0f}s (limit {limit:.0f}s)")
        return Health(not reasons, tuple(reasons))


@contextlib.asynccontextmanager
async def build(
    settings: Settings, *, clock: Clock | None = None, seed: int | None = None
) -> AsyncIterator[Daemon]:
    """Open the store and the HTTP client and wire every component; nothing runs yet."""
    clock = clock or SystemClock()
    rng = random.Random(seed)
    metrics = Metrics(per_agent=settings.metrics.per_agent, by=settings.metrics.by)
    async with await Store.open(settings.storage.path) as store:
        transport = Transport(settings.genesys.request_timeout_s)
        try:
            tracker = Tracker()
            states = await store.load_states()
            tracker.load(states.items())
            known_agents = [a for a in await store.agents() if a.state == "active"]
            alive = await store.meta(ALIVE_KEY)
            metrics.agents.set_agents(known_agents)
            metrics.load_states(states)
            writer = Writer(
                store,
                max_batch=settings.storage.batch_size,
                max_delay_s=settings.storage.batch_delay_ms / 1000,
                queue_size=settings.storage.queue_size,
                on_batch=lambda size, seconds: _on_batch(metrics, size, seconds),
            )
            metrics.writer_queue.set_function(lambda: writer.depth)
            clients = _clients(settings, transport, clock, rng, metrics)
            recorder = Recorder(tracker, metrics, writer)
            reconciler = Reconciler(
                [c.api for c in clients],
                recorder,
                metrics,
                clock,
                page_size=settings.genesys.users_page_size,
            )
            deps = SlotDeps(
                recorder=recorder,
                reconciler=reconciler,
                metrics=metrics,
                record_gap=lambda gap: _record_gap(store, gap),
                settings=settings.channels,
                combined=settings.genesys.topics == "combined",
                clock=clock,
                rng=rng,
            )
            pool = ChannelPool(clients, deps)
            daemon = Daemon(
                settings=settings,
                clock=clock,
                store=store,
                metrics=metrics,
                tracker=tracker,
                writer=writer,
                recorder=recorder,
                reconciler=reconciler,
                clients=clients,
                pool=pool,
                transport=transport,
                rng=rng,
                roster=known_agents,
                last_alive_ms=int(alive) if alive else None,
            )
            daemon.web = WebApp(metrics, daemon.health)
            _wire_actions(daemon)
            api.mount(daemon)
            wallboard.mount(daemon)
            yield daemon
        finally:
            await transport.aclose()


def _token_expiry(metrics: Metrics, client: str, token: AccessToken) -> None:
    metrics.token_expiry.labels(client).set(token.expires_ms / 1000)


def _wire_actions(d: Daemon) -> None:
    """Presence changes, schedules and stuck-agent rules, and the action endpoint."""
    s = d.settings

    def api_for(agent_id: str) -> GenesysApi:
        # A change goes through the OAuth client that watches the agent: its budget pays.
        for key, slot in d.pool.slots.items():
            if agent_id in slot.agents:
                return d.clients[key.client].api
        return d.clients[0].api

    def counted(actor: str, outcome: str) -> None:
        d.metrics.actions.labels(actor.split(":", 1)[0], outcome).inc()

    d.actions = ActionRunner(
        ActionDeps(
            roster=lambda: d.roster,
            tracker=d.tracker,
            api_for=api_for,
            catalog=PresenceCatalog(d.clients[0].api, d.clock),
            audit=d.store.record_actions,
            clock=d.clock,
            max_agents=s.actions.max_agents,
            bulk_size=s.actions.bulk_size,
            on_outcome=counted,
        )
    )
    d.scheduler = Scheduler(
        schedule_config.load(s.schedules), d.actions, d.store, d.metrics, d.clock
    )
    d.metrics.known_schedules([schedule.name for schedule in d.scheduler.schedules])
    engine = rules.RuleEngine(rules.load(s.rules, defaults=s.stuck.defaults))
    d.stuck = StuckWatcher(
        engine,
        lambda: d.roster,
        d.tracker,
        d.metrics,
        d.clock,
        every_s=s.stuck.evaluate_every_s,
        runner=d.actions,
    )
    if s.http.actions:
        presence_api.add_routes(d.web.router, d.actions, s.http.token, lambda: d.pool.ready)


def _on_batch(metrics: Metrics, size: int, seconds: float) -> None:
    metrics.write_batches.observe(seconds)
    metrics.rows_written.inc(size)


_gap_tasks: set[asyncio.Task[None]] = set()


def _record_gap(store: Store, gap: Gap) -> None:
    # Gaps are rare and small; writing them beside the transition writer keeps the slot's
    # control loop from waiting on the disk.
    task = asyncio.get_running_loop().create_task(store.record_gap(gap), name="record-gap")
    _gap_tasks.add(task)
    task.add_done_callback(_gap_tasks.discard)


def _clients(
    settings: Settings, transport: Transport, clock: Clock, rng: random.Random, metrics: Metrics
) -> list[PoolClient]:
    g = settings.genesys
    observer = ApiMetrics(metrics)
    clients = []
    for index, client in enumerate(g.clients):
        tokens = TokenSource(
            transport,
            g.resolved_login_url(),
            client.client_id,
            client.client_secret,
            clock,
            rng=random.Random(rng.random()),
        )
        tokens.on_change(functools.partial(_token_expiry, metrics, str(index)))
        api = GenesysApi(
            transport,
            g.resolved_api_url(),
            tokens,
            clock,
            requests_per_minute=g.requests_per_minute,
            action_share=settings.actions.rate_share,
            max_retry_after_s=g.max_retry_after_s,
            users_result_cap=g.users_result_cap,
            search_page_size=g.search_page_size,
            observer=observer,
        )
        clients.append(PoolClient(index, api, tokens))
    return clients


async def run(
    daemon: Daemon, stop: asyncio.Event, *, on_ready: Callable[[], None] | None = None
) -> None:
    """Run until `stop` is set; then stop intake, drain the writer and return.

    Raises MonitorError for what cannot be recovered (exit code 1)."""
    d = daemon
    s = d.settings
    server = d.web.server(s.http.max_body_bytes)
    try:
        await server.start(s.http.host, s.http.port)
    except OSError as exc:
        raise MonitorError(f"cannot listen on {s.http.listen}: {exc.strerror or exc}") from None
    d.web_port = server.port
    log.info("http_listening", url=f"http://{server.host}:{server.port}")
    writer_task = asyncio.create_task(d.writer.run(), name="writer")
    try:
        source = RosterSource(
            d.clients[0].api,
            s.roster,
            page_size=s.genesys.users_page_size,
            with_queues="queue" in s.metrics.by or d.stuck.needs_queues,
        )

        async def start_up() -> list[Agent]:
            # Credentials first: a refused client is a configuration problem, reported at once.
            for client in d.clients:
                await client.tokens.get()
            # The agents watched before a restart: any the listing skips are read by id.
            known = [a.id for a in await d.store.agents() if a.state == "active"]
            return await source.fetch(known)

        roster = await _patiently(d, stop, start_up)
        if roster is None:
            log.info("stopping")
            return
        _names_known(d, source)
        ids = [a.id for a in roster]
        d.pool.check_capacity(ids)
        await _apply_roster(d, roster)
        log.info("roster_loaded", agents=len(roster), clients=len(d.clients))
        try:
            async with asyncio.TaskGroup() as intake:
                intake.create_task(d.reconciler.run(), name="reconciler")
                intake.create_task(d.pool.run(ids), name="pool")
                intake.create_task(_roster_loop(d, source), name="roster")
                for client in d.clients:
                    intake.create_task(
                        _refresh_tokens(d, client), name=f"token-refresh-{client.index}"
                    )
                intake.create_task(_retention_loop(d), name="retention")
                intake.create_task(_index_loop(d), name="agent-index")
                intake.create_task(_keep_alive(d), name="alive")
                intake.create_task(_watch_loop(d), name="loop-lag")
                intake.create_task(_when_ready(d, intake, on_ready), name="ready")
                intake.create_task(_watch_writer(writer_task), name="writer-watch")
                await stop.wait()
                raise StopRequested
        except* StopRequested:
            log.info("stopping")
    except* MonitorError as group:
        raise _first(group) from None
    finally:
        # Intake has stopped (or failed): whatever reached the queue is written before exit.
        await d.writer.drain(s.storage.drain_timeout_s)
        if not writer_task.done():
            writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer_task
        if _gap_tasks:
            await asyncio.gather(*_gap_tasks, return_exceptions=True)
        with contextlib.suppress(MonitorError):
            await d.store.set_meta(ALIVE_KEY, str(d.clock.now_ms()))
        await server.close()


async def _patiently(
    d: Daemon, stop: asyncio.Event, attempt: Callable[[], Awaitable[T]]
) -> T | None:
    """`attempt()` until it succeeds, waiting out Genesys's passing failures (5xx, 429, the
    network) with backoff, as the channels do: a restart during an outage must not end in exit
    1. Other errors (refused credentials, a bad request) are raised at once. None if `stop` is
    set meanwhile."""
    backoff = Backoff(d.settings.channels.backoff_base_s, d.settings.channels.backoff_cap_s, d.rng)
    while True:
        try:
            return await attempt()
        except (ServerError, RateLimited, TransportError) as exc:
            delay = backoff.next()
            log.warning("start_up_failed", error=str(exc), retry_in_s=round(delay, 2))
        pause = asyncio.ensure_future(d.clock.sleep(delay))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({pause, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pause.cancel()
            stopped.cancel()
        if stop.is_set():
            return None


def _first(group: BaseExceptionGroup[MonitorError]) -> MonitorError:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    raise group


async def _watch_writer(writer_task: asyncio.Task[None]) -> None:
    """The writer failing for good (e.g. a persistent disk error) ends the daemon."""
    await asyncio.wait([writer_task])
    if not writer_task.cancelled() and writer_task.exception() is not None:
        raise writer_task.exception()  # type: ignore[misc]


async def _when_ready(
    d: Daemon, intake: asyncio.TaskGroup, on_ready: Callable[[], None] | None
) -> None:
    """Once every channel is up and reconciled: note the downtime gap, then start what acts on
    the state (stuck-agent rules, schedules), which must not judge from a partial view."""
    await d.pool.wait_ready()
    if d.last_alive_ms is not None:
        # While the monitor was not running nothing was watched: a gap for every agent, from
        # when it was last known alive to the first complete snapshot.
        now = d.clock.now_ms()
        await d.store.record_gap(Gap("*", min(d.last_alive_ms, now), now, "monitor not running"))
        d.metrics.gaps.inc()
        d.metrics.gap_seconds.inc(max(0, now - d.last_alive_ms) / 1000)
    d.metrics.ready.set(1)
    log.info("ready", agents=len(d.roster), channels=len(d.pool.slots))
    intake.create_task(d.stuck.run(), name="stuck-rules")
    intake.create_task(_warm_reports(d), name="report-cache")
    for schedule in d.scheduler.schedules:
        intake.create_task(d.scheduler.run_schedule(schedule), name=f"schedule-{schedule.name}")
    if on_ready is not None:
        on_ready()


def _names_known(d: Daemon, source: RosterSource) -> None:
    """Queue names from the latest roster read: for the rules' selectors and the metrics."""
    d.stuck.engine.resolve_names(source.queue_names, {})
    d.metrics.agents.set_queue_names({qid: name for name, qid in source.queue_names.items()})


async def _apply_roster(d: Daemon, roster: Sequence[Agent]) -> None:
    now = d.clock.now_ms()
    old = {a.id for a in d.roster}
    new = {a.id for a in roster}
    departed = old - new
    for agent_id in departed:
        d.tracker.forget(agent_id)
    if departed:
        await d.store.mark_agents_inactive(sorted(departed), now)
    await d.store.upsert_agents(roster, now)
    d.metrics.agents.set_agents(roster)
    d.roster = list(roster)


async def _roster_loop(d: Daemon, source: RosterSource) -> None:
    while True:
        await d.clock.sleep(d.settings.roster.refresh_s)
        try:
            roster = await source.fetch([a.id for a in d.roster])
        except (GenesysError, ConfigError) as exc:
            log.warning("roster_refresh_failed", error=str(exc))
            continue
        if [a.id for a in roster] != [a.id for a in d.roster] or roster != d.roster:
            joined = len({a.id for a in roster} - {a.id for a in d.roster})
            left = len({a.id for a in d.roster} - {a.id for a in roster})
            await _apply_roster(d, roster)
            _names_known(d, source)
            d.pool.update_roster([a.id for a in roster])
            log.info("roster_changed", joined=joined, left=left, agents=len(roster))


async def _refresh_tokens(d: Daemon, client: PoolClient) -> None:
    """Refresh each token before it expires; the pool rolls channels over to the new token."""
    before_ms = d.settings.channels.token_refresh_before_s * 1000
    while True:
        token: AccessToken = await client.tokens.get()
        lifetime = token.expires_ms - token.issued_ms
        refresh_at = token.expires_ms - min(before_ms, lifetime / 2)
        await d.clock.sleep(max(1.0, (refresh_at - d.clock.now_ms()) / 1000))
        if client.tokens.current is token:
            try:
                await client.tokens.refresh(stale=token)
            except GenesysError as exc:
                log.warning("token_refresh_failed", client=client.index, error=str(exc))


async def _warm_reports(d: Daemon) -> None:
    """Count each finished day once, soon after it ends, so that reports over past days (the
    JSON API's, the CLI's) read the per-day totals instead of a month of transitions."""
    tz_name = d.settings.actions.timezone
    zone = ZoneInfo(tz_name)
    while True:
        now = d.clock.now_ms()
        today = datetime.fromtimestamp(now / 1000, zone).date()
        try:
            await status_time(
                d.store, today - timedelta(days=_WARM_DAYS), today - timedelta(days=1), tz_name, now
            )
        except (MonitorError, ValueError) as exc:
            log.warning("report_cache_failed", error=str(exc))
        tomorrow = datetime.combine(today + timedelta(days=1), time(0, 5), zone)
        await d.clock.sleep(max(60.0, tomorrow.timestamp() - now / 1000))


async def _keep_alive(d: Daemon) -> None:
    """Note the time regularly, so that after a crash the next start knows when watching stopped."""
    while True:
        await d.store.set_meta(ALIVE_KEY, str(d.clock.now_ms()))
        # Real seconds, not the clock's: this paces a disk write, whatever the simulated speed.
        await asyncio.sleep(_ALIVE_EVERY_S)


async def _watch_loop(d: Daemon) -> None:
    """Measure how late the event loop wakes a timer. Everything the daemon does shares that one
    thread, so a long computation or a blocking call delays every frame, scrape and health check;
    this makes such a stall visible (metric and log) instead of leaving only its effects."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _LOOP_TICK_S
        # Real seconds, not the clock's: the delay measured is the loop's, in real time.
        await asyncio.sleep(_LOOP_TICK_S)
        lag = max(0.0, loop.time() - due)
        d.metrics.loop_lag.observe(lag)
        if lag >= _LOOP_BLOCKED_S:
            log.warning("event_loop_blocked", seconds=round(lag, 2))


async def _retention_loop(d: Daemon) -> None:
    days = d.settings.storage.retention_days
    while True:
        cutoff = d.clock.now_ms() - days * _DAY_S * 1000
        removed = await d.store.prune(cutoff)
        if removed:
            log.info("retention_pruned", rows=removed, days=days)
        await d.clock.sleep(_DAY_S / 4)


async def _index_loop(d: Daemon) -> None:
    while True:
        await d.store.index_hours(d.clock.now_ms() - _INDEX_AFTER_MS)
        await d.clock.sleep(_INDEX_EVERY_S)
