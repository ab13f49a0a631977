"""The channel pool: every channel slot of every OAuth client, planned within Genesys's limits.

The pool turns the roster into an assignment of agents to channel slots (`core.topics.plan`),
runs one `Slot` task per slot, and applies roster changes as small diffs: the agents of a slot
change, slots open and close, and no other channel is touched.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

import structlog

from monitor.core.topics import ChannelSlot, Limits, diff, plan
from monitor.errors import CapacityError
from monitor.genesys.channels import PoolClient, Slot, SlotDeps

log = structlog.get_logger(__name__)


class ChannelPool:
    def __init__(
        self,
        clients: Sequence[PoolClient],
        deps: SlotDeps,
        *,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.clients = list(clients)
        self._d = deps
        self.limits = Limits.for_topics(len(clients), deps.combined)
        self._start_timeout_s = start_timeout_s
        self.slots: dict[ChannelSlot, Slot] = {}
        self._roster: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        self.unwatched = 0
        self._planned = asyncio.Event()
        metrics = deps.metrics
        metrics.topics_subscribed.set_function(self._topics_subscribed)
        metrics.topics_rejected.set_function(
            lambda: sum(len(slot.rejected) for slot in self.slots.values())
        )
        metrics.agents_unwatched.set_function(lambda: self.unwatched)
        for client in self.clients:
            client.tokens.on_change(functools.partial(self._token_changed, client.index))

    def check_capacity(self, agent_ids: Sequence[str]) -> None:
        """Raise CapacityError when the agents cannot all be watched (refuse at start)."""
        self._d.metrics.clients_needed.set(self.limits.clients_needed(len(agent_ids)))
        if len(agent_ids) > self.limits.capacity:
            raise CapacityError(
                len(agent_ids), self.limits.capacity, self.limits.clients_needed(len(agent_ids))
            )

    def update_roster(self, agent_ids: Sequence[str]) -> None:
        """A new roster; applied by `run` as a diff."""
        self._roster.put_nowait(frozenset(agent_ids))

    def watched(self) -> frozenset[str]:
        return frozenset().union(*(slot.agents for slot in self.slots.values()))

    @property
    def ready(self) -> bool:
        """The roster is planned and every slot has been up (subscribed and reconciled)."""
        return self._planned.is_set() and all(s.ever_up.is_set() for s in self.slots.values())

    async def wait_ready(self) -> None:
        await self._planned.wait()
        while not self.ready:
            # Slots may open meanwhile (a roster change): wait for whoever is not up yet.
            await asyncio.gather(
                *(s.ever_up.wait() for s in self.slots.values() if not s.ever_up.is_set())
            )

    def down(self, now_ms: int) -> list[tuple[str, float]]:
        """(slot, seconds down) of every slot not delivering now."""
        return [
            (slot.label, (now_ms - slot.down_since_ms) / 1000)
            for slot in self.slots.values()
            if not slot.up and slot.down_since_ms is not None
        ]

    async def run(self, agent_ids: Sequence[str]) -> None:
        """Watch `agent_ids` (then whatever `update_roster` says) until cancelled."""
        async with asyncio.TaskGroup() as group:
            # The first snapshot waits until every initial channel is subscribed: one read of the
            # whole roster instead of one per channel.
            self._d.reconciler.hold()
            self._apply(frozenset(agent_ids), group)
            group.create_task(self._release_when_subscribed(), name="pool-first-snapshot")
            while True:
                roster = await self._roster.get()
                while not self._roster.empty():
                    roster = self._roster.get_nowait()  # only the newest roster matters
                self._apply(roster, group)

    async def _release_when_subscribed(self) -> None:
        waits = [slot.subscribed_once.wait() for slot in self.slots.values()]
        try:
            async with self._d.clock.timeout(self._start_timeout_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            log.warning("channels_slow_to_start", waited_s=self._start_timeout_s)
        finally:
            self._d.reconciler.release()

    def _apply(self, roster: frozenset[str], group: asyncio.TaskGroup) -> None:
        current = {key: slot.agents for key, slot in self.slots.items()}
        try:
            assignment = plan(current, roster, self.limits)
            self.unwatched = 0
        except CapacityError as exc:
            # Keep watching who is watched now, and as many newcomers as fit.
            log.error("capacity_exceeded", error=str(exc))
            kept = [a for a in sorted(roster) if any(a in s for s in current.values())]
            newcomers = [a for a in sorted(roster) if a not in set(kept)]
            fitting = kept + newcomers[: max(0, self.limits.capacity - len(kept))]
            assignment = plan(current, fitting, self.limits)
            self.unwatched = len(roster) - len(fitting)
        self._d.metrics.clients_needed.set(self.limits.clients_needed(len(roster)))
        self._d.reconciler.watched = frozenset().union(*assignment.values())
        for change in diff(current, assignment):
            if change.closed:
                self.slots.pop(change.slot).stop()
            elif change.opened:
                client = self.clients[change.slot.client]
                slot = Slot(change.slot, assignment[change.slot], client, self._d)
                self.slots[change.slot] = slot
                group.create_task(slot.run(), name=f"slot-{slot.label}")
            else:
                self.slots[change.slot].set_agents(assignment[change.slot])
        self._planned.set()
        log.info("channels_planned", slots=len(self.slots), agents=len(roster) - self.unwatched)

    def _token_changed(self, client_index: int, _token: object) -> None:
        for key, slot in self.slots.items():
            if key.client == client_index:
                slot.token_changed()

    def _topics_subscribed(self) -> float:
        per_agent = self.limits.topics_per_agent
        return sum(
            len(slot.agents) * per_agent - len(slot.rejected)
            for slot in self.slots.values()
            if slot.up
        )
