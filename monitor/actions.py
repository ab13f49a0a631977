"""Presence changes the monitor makes: planned against what it knows, guarded, rate-limited,
written in bulk, and audited agent by agent.

Every change goes through `ActionRunner.run`, whoever asks (the CLI through the HTTP endpoint, a
schedule, a stuck-agent rule), so the same guards and the same audit apply to all:

- agents handling an interaction (routing INTERACTING or COMMUNICATING) are skipped unless forced;
- agents already in the target presence are skipped; for On Queue that means on queue and
  routable: an agent On Queue but NOT_RESPONDING is made IDLE again (routing status), and one On
  Queue but OFF_QUEUE has On Queue set again;
- a request that would change more agents than the cap is refused as a whole (not cut short),
  unless it raises the cap explicitly;
- a dry run says exactly what would change and changes nothing;
- every agent's outcome, dry runs and skips included, is an audit row.

Requests run one at a time, so two overlapping requests never race on the same agents.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from monitor.clock import Clock
from monitor.core.model import (
    ActionRecord,
    Agent,
    Kind,
    Presence,
    PresenceDefinitionInfo,
    RoutingStatus,
    StatusState,
)
from monitor.core.presence_names import resolve
from monitor.core.selectors import Selector
from monitor.core.tracker import Tracker
from monitor.errors import ActionError, ApiError, GenesysError, NotFound
from monitor.genesys.api import GenesysApi

log = structlog.get_logger(__name__)

BUSY_ROUTING = frozenset({RoutingStatus.INTERACTING.value, RoutingStatus.COMMUNICATING.value})
_DEFINITIONS_TTL_S = 600.0

CHANGED = "changed"
WOULD_CHANGE = "would_change"
SKIPPED_ALREADY = "skipped_already"
SKIPPED_INTERACTING = "skipped_interacting"
FAILED = "failed"


@dataclass(frozen=True)
class ActionRequest:
    """A presence change asked for: `target` as people name it, for the agents `selector` picks."""

    target: str
    selector: Selector
    actor: str
    dry_run: bool = False
    force: bool = False  # change agents who are handling an interaction too
    max_agents: int | None = None  # raise the cap for this request


@dataclass(frozen=True)
class AgentOutcome:
    agent_id: str
    name: str
    from_value: str | None
    outcome: str
    error: str = ""
    event_ms: int | None = None  # when Genesys says the change took effect


@dataclass(frozen=True)
class _Planned:
    """An agent to change: its presence now, and, for an agent already On Queue, the routing
    status that keeps it from being offered interactions (what the change must fix)."""

    agent: Agent
    current: str | None
    fix: str | None = None


@dataclass(frozen=True)
class ActionResult:
    request_id: str
    target: PresenceDefinitionInfo
    dry_run: bool
    outcomes: tuple[AgentOutcome, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.counts.get(FAILED, 0) > 0


class PresenceCatalog:
    """The org's presence definitions, read over REST and kept for a while."""

    def __init__(self, api: GenesysApi, clock: Clock) -> None:
        self._api = api
        self._clock = clock
        self._definitions: list[PresenceDefinitionInfo] = []
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def definitions(self, *, fresh: bool = False) -> list[PresenceDefinitionInfo]:
        async with self._lock:
            stale = self._clock.monotonic() - self._read_at > _DEFINITIONS_TTL_S
            if fresh or stale or not self._definitions:
                self._definitions = await self._api.presence_definitions()
                self._read_at = self._clock.monotonic()
            return self._definitions

    async def resolve(self, name: str) -> PresenceDefinitionInfo:
        """The definition people call `name`; a name not found is tried once more against a fresh
        read (an org may have added it since). Raises ActionError listing the choices."""
        try:
            return resolve(name, await self.definitions())
        except ValueError:
            pass
        try:
            return resolve(name, await self.definitions(fresh=True))
        except ValueError as exc:
            raise ActionError(str(exc)) from None


@dataclass
class ActionDeps:
    """What the runner reads and writes; supplied by the daemon."""

    roster: Callable[[], Sequence[Agent]]
    tracker: Tracker
    api_for: Callable[[str], GenesysApi]  # the API of the OAuth client that watches an agent
    catalog: PresenceCatalog
    audit: Callable[[Sequence[ActionRecord]], object]  # awaitable: store.record_actions
    clock: Clock
    max_agents: int
    bulk_size: int = 50
    on_outcome: Callable[[str, str], None] | None = None  # (actor, outcome), for metrics


class ActionRunner:
    def __init__(self, deps: ActionDeps) -> None:
        self._d = deps
        self._lock = asyncio.Lock()

    async def run(self, request: ActionRequest) -> ActionResult:
        """Plan, guard, apply (unless a dry run) and audit one request.

        Raises ActionError before anything is changed when the target is unknown or the request
        exceeds the cap; per-agent failures are outcomes, not exceptions."""
        async with self._lock:
            d = self._d
            target = await d.catalog.resolve(request.target)
            request_id = str(uuid.uuid4())
            roster, selector = await self._with_queues(request.selector)
            now = d.clock.now_ms()
            planned, skipped = self._plan(request, selector, roster, target, now)
            cap = request.max_agents if request.max_agents is not None else d.max_agents
            if len(planned) > cap:
                raise ActionError(
                    f"{len(planned)} agents would change, more than the cap of {cap} for one "
                    "request; narrow the selection or raise the cap explicitly (max_agents)"
                )
            if request.dry_run:
                done = [
                    AgentOutcome(p.agent.id, p.agent.name, p.current, WOULD_CHANGE) for p in planned
                ]
            else:
                done = await self._apply(planned, target)
            outcomes = tuple(skipped + done)
            await self._audit(request, request_id, target, outcomes, now)
            counts: dict[str, int] = {}
            for outcome in outcomes:
                counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
                if d.on_outcome is not None:
                    d.on_outcome(request.actor, outcome.outcome)
            log.info(
                "presence_action",
                actor=request.actor,
                target=target.labels.get("en_US", target.system_presence),
                selection=request.selector.describe(),
                dry_run=request.dry_run,
                request_id=request_id,
                **counts,
            )
            return ActionResult(request_id, target, request.dry_run, outcomes, counts)

    async def _with_queues(self, selector: Selector) -> tuple[Sequence[Agent], Selector]:
        """The roster and the selector, with queue memberships and names read now when the
        selection names queues: they change often and are not all kept, so the selection uses
        Genesys's current answer."""
        roster = self._d.roster()
        if not selector.queues:
            return roster, selector
        api = self._d.api_for("")
        named = {name: qid for qid, name in await api.queues()}
        selector = selector.resolve(named)
        queues = {name.casefold(): qid for name, qid in named.items()}
        wanted = {queues.get(q.casefold(), q) for q in selector.queues}
        members: dict[str, list[str]] = {}
        for queue_id in sorted(wanted):
            try:
                ids = await api.queue_member_ids(queue_id)
            except NotFound:
                raise ActionError(f"no queue {queue_id!r}") from None
            for member in ids:
                members.setdefault(member, []).append(queue_id)
        roster = [dataclasses.replace(a, queue_ids=tuple(members.get(a.id, ()))) for a in roster]
        return roster, selector

    def _plan(
        self,
        request: ActionRequest,
        selector: Selector,
        roster: Sequence[Agent],
        target: PresenceDefinitionInfo,
        now: int,
    ) -> tuple[list[_Planned], list[AgentOutcome]]:
        """The agents to change, and the agents skipped."""
        tracker = self._d.tracker
        planned: list[_Planned] = []
        skipped: list[AgentOutcome] = []
        for agent in roster:
            presence = tracker.state(agent.id, Kind.PRESENCE)
            routing = tracker.state(agent.id, Kind.ROUTING)
            if not selector.matches(agent, presence, routing, now):
                continue
            current = presence.value if presence else None
            stuck = _not_routable(presence, routing, target)
            if _already(presence, target) and stuck is None:
                skipped.append(AgentOutcome(agent.id, agent.name, current, SKIPPED_ALREADY))
            elif routing is not None and routing.value in BUSY_ROUTING and not request.force:
                skipped.append(AgentOutcome(agent.id, agent.name, current, SKIPPED_INTERACTING))
            else:
                planned.append(_Planned(agent, current, stuck))
        return planned, skipped

    async def _apply(
        self, planned: list[_Planned], target: PresenceDefinitionInfo
    ) -> list[AgentOutcome]:
        """Bulk writes per OAuth client, `bulk_size` at a time; a batch Genesys refuses as a whole
        is retried agent by agent, so one bad agent does not fail the others."""
        by_api: dict[int, tuple[GenesysApi, list[tuple[Agent, str | None]]]] = {}
        outcomes: list[AgentOutcome] = []
        for item in planned:
            api = self._d.api_for(item.agent.id)
            if item.fix == RoutingStatus.NOT_RESPONDING:
                outcomes.append(await self._make_idle(api, item.agent))
            else:
                by_api.setdefault(id(api), (api, []))[1].append((item.agent, item.current))
        size = self._d.bulk_size
        for api, items in by_api.values():
            for i in range(0, len(items), size):
                outcomes += await self._write(api, items[i : i + size], target)
        return outcomes

    async def _make_idle(self, api: GenesysApi, agent: Agent) -> AgentOutcome:
        """On Queue but not responding: routing back to IDLE, so interactions are offered again."""
        current = Presence.ON_QUEUE.value
        try:
            update = await api.put_routing_status(agent.id, RoutingStatus.IDLE.value)
        except GenesysError as exc:
            return AgentOutcome(agent.id, agent.name, current, FAILED, str(exc))
        if update.value != RoutingStatus.IDLE:
            return AgentOutcome(agent.id, agent.name, current, FAILED, f"routing is {update.value}")
        return AgentOutcome(agent.id, agent.name, current, CHANGED, event_ms=update.event_ms)

    async def _write(
        self, api: GenesysApi, batch: list[tuple[Agent, str | None]], target: PresenceDefinitionInfo
    ) -> list[AgentOutcome]:
        try:
            results = await api.put_bulk_presences([(a.id, target.id) for a, _ in batch])
        except ApiError as exc:
            if len(batch) == 1 or exc.status >= 500 or exc.status == 429:
                return [AgentOutcome(a.id, a.name, f, FAILED, str(exc)) for a, f in batch]
            outcomes: list[AgentOutcome] = []
            for item in batch:
                outcomes += await self._write(api, [item], target)
            return outcomes
        except GenesysError as exc:
            return [AgentOutcome(a.id, a.name, f, FAILED, str(exc)) for a, f in batch]
        confirmed = {u.agent_id: u.event_ms for u in results if u.definition_id == target.id}
        return [
            AgentOutcome(a.id, a.name, f, CHANGED, event_ms=confirmed[a.id])
            if a.id in confirmed
            else AgentOutcome(a.id, a.name, f, FAILED, "Genesys did not confirm the change")
            for a, f in batch
        ]

    async def _audit(
        self,
        request: ActionRequest,
        request_id: str,
        target: PresenceDefinitionInfo,
        outcomes: Sequence[AgentOutcome],
        now: int,
    ) -> None:
        rows = [
            ActionRecord(
                at_ms=now,
                actor=request.actor,
                agent_id=o.agent_id,
                from_value=o.from_value,
                to_value=target.system_presence,
                definition_id=target.id,
                dry_run=request.dry_run,
                outcome=o.outcome,
                request_id=request_id,
                error=o.error,
                event_ms=o.event_ms,
            )
            for o in outcomes
        ]
        result = self._d.audit(rows)
        if asyncio.iscoroutine(result):
            await result


def _not_routable(
    presence: StatusState | None, routing: StatusState | None, target: PresenceDefinitionInfo
) -> str | None:
    """For an On Queue target and an agent already On Queue: what keeps the agent from being
    offered interactions (NOT_RESPONDING, or an inconsistent OFF_QUEUE), if anything."""
    if target.system_presence != Presence.ON_QUEUE or not _already(presence, target):
        return None
    if routing is not None and routing.value in (
        RoutingStatus.NOT_RESPONDING,
        RoutingStatus.OFF_QUEUE,
    ):
        return routing.value
    return None


def _already(presence: StatusState | None, target: PresenceDefinitionInfo) -> bool:
    if presence is None:
        return False
    if presence.definition_id:
        return presence.definition_id == target.id
    return presence.value == target.system_presence
