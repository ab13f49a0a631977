"""Snapshots: read the current presence and routing status of agents over REST and record what
differs as transitions with source `snapshot`.

Genesys keeps no backlog for a channel that was not delivering (GENESYS.md 7), so after every
(re)subscription the agents of that channel are read again. Requests from channels that come up
together (a cold start, a maintenance window closing every socket) are merged into one snapshot:
reading the whole roster page by page costs far fewer calls than reading it channel by channel.

A request does not wait for a snapshot already running: a change made after its channel came up
and overwritten before the snapshot reads it would be lost for good. Up to `_ROUNDS` snapshots run
at once, each with the requests that arrived before it began; the request budget paces them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import structlog

from monitor.clock import Clock
from monitor.core.model import Source, Update
from monitor.genesys.api import BULK_PRESENCE_BATCH, USERS_BY_ID_BATCH, GenesysApi
from monitor.genesys.payloads import UserRecord
from monitor.metrics import Metrics
from monitor.recorder import Recorder

log = structlog.get_logger(__name__)

EXPAND = ("presence", "routingStatus")
# Above this share of the roster, paging through every user is cheaper than asking by id.
_PAGE_ALL_SHARE = 0.5
# Snapshots running at once; requests beyond wait, merged, for the first to end.
_ROUNDS = 4


class Reconciler:
    """Merges snapshot requests and runs them; `reconcile()` returns once the agents are read."""

    def __init__(
        self,
        apis: Sequence[GenesysApi],
        recorder: Recorder,
        metrics: Metrics,
        clock: Clock,
        *,
        page_size: int,
        merge_window_s: float = 0.1,
    ) -> None:
        self._apis = apis
        self._recorder = recorder
        self._metrics = metrics
        self._clock = clock
        self._page_size = page_size
        self._merge_window_s = merge_window_s
        self._pending: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._held = 0
        self._released = asyncio.Event()
        self._released.set()
        self._wake = asyncio.Event()
        # Every watched agent: a page read for some of them is recorded for all it shows.
        self.watched: frozenset[str] = frozenset()
        self._next_api = 0

    def hold(self) -> None:
        """Collect requests without running them (while the first channels come up)."""
        self._held += 1
        self._released.clear()

    def release(self) -> None:
        self._held = max(0, self._held - 1)
        if self._held == 0:
            self._released.set()

    async def reconcile(self, agent_ids: Collection[str]) -> None:
        """Read these agents' state and record the differences; merged with concurrent requests.

        Raises whatever the snapshot raised (ApiError, TransportError), so the caller can retry.
        """
        if not agent_ids:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.update(agent_ids)
        self._waiters.append(future)
        self._wake.set()
        await future

    async def run(self) -> None:
        """Serve merged requests until cancelled (which cancels the snapshots running)."""
        rounds = asyncio.Semaphore(_ROUNDS)
        async with asyncio.TaskGroup() as group:
            while True:
                await self._wake.wait()
                await self._released.wait()
                # Requests arriving within the merge window, or while every round is busy, join
                # this snapshot.
                await self._clock.sleep(self._merge_window_s)
                await rounds.acquire()
                self._wake.clear()
                agents, self._pending = self._pending, set()
                waiters, self._waiters = self._waiters, []
                group.create_task(self._round(agents, waiters, rounds), name="snapshot")

    async def _round(
        self, agents: set[str], waiters: list[asyncio.Future[None]], rounds: asyncio.Semaphore
    ) -> None:
        """One snapshot; its outcome goes to the requests it serves, never up to run()."""
        try:
            await self.snapshot(agents)
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        finally:
            rounds.release()

    async def snapshot(self, agent_ids: Collection[str]) -> int:
        """Read and record the state of `agent_ids` now; returns the transitions it made.

        Each page is recorded as soon as it is read: if a later page fails, what was read is
        kept, and the caller's retry reads the rest.
        """
        wanted = set(agent_ids)
        api = self._api()
        made = 0
        started = self._clock.monotonic()
        seen: set[str] = set()
        if len(wanted) > USERS_BY_ID_BATCH and len(wanted) >= len(self.watched) * _PAGE_ALL_SHARE:
            watched = self.watched | wanted
            async for page in api.user_pages(self._page_size, expand=EXPAND):
                made += await self._record([u for u in page if u.agent.id in watched], seen)
        # By id: the agents asked for, or those the pages missed. Paging is by offset, so a user
        # who leaves the listing meanwhile moves every later user one place back, and the first
        # of the next page is never shown.
        async for users in api.users_by_id(sorted(wanted - seen), expand=EXPAND):
            made += await self._record([u for u in users if u.agent.id in wanted], seen)
        if wanted - seen:
            log.info("snapshot_users_missing", count=len(wanted - seen))
        self._metrics.snapshots.inc()
        log.info(
            "snapshot_read",
            agents=len(wanted),
            transitions=made,
            seconds=round(self._clock.monotonic() - started, 3),
        )
        return made

    async def _record(self, users: list[UserRecord], seen: set[str]) -> int:
        """Record one page of a snapshot; expands left out are read from the dedicated endpoints
        (Genesys resolves expands on a best-effort basis)."""
        updates: list[Update] = []
        missing_presence: list[str] = []
        for user in users:
            seen.add(user.agent.id)
            if user.presence is None:
                missing_presence.append(user.agent.id)
            else:
                updates.append(user.presence)
            if user.routing is None:
                updates.append(await self._api().routing_status(user.agent.id))
            else:
                updates.append(user.routing)
        for i in range(0, len(missing_presence), BULK_PRESENCE_BATCH):
            batch = missing_presence[i : i + BULK_PRESENCE_BATCH]
            updates += await self._api().bulk_presences(batch)
        return await self._recorder.record(updates, Source.SNAPSHOT, self._clock.now_ms())

    def _api(self) -> GenesysApi:
        # Spreading snapshot calls over the OAuth clients spreads them over their budgets.
        api = self._apis[self._next_api % len(self._apis)]
        self._next_api += 1
        return api
