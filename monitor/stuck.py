"""Stuck-agent rules at work: evaluated on a timer against what the tracker knows, each firing
and clearing logged once, exported as metrics, and, where a rule says so, acted upon."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

import structlog

from monitor.actions import ActionRequest, ActionRunner
from monitor.clock import Clock
from monitor.core.model import Agent, StatusState
from monitor.core.rules import RuleEngine, RuleEvent
from monitor.core.selectors import Selector
from monitor.core.tracker import Tracker
from monitor.errors import MonitorError
from monitor.metrics import Metrics

log = structlog.get_logger(__name__)
# Agents whose states are read between two turns of the event loop.
_READ_CHUNK = 2000


class StuckWatcher:
    def __init__(
        self,
        engine: RuleEngine,
        roster: Callable[[], Sequence[Agent]],
        tracker: Tracker,
        metrics: Metrics,
        clock: Clock,
        *,
        every_s: float,
        runner: ActionRunner | None = None,
    ) -> None:
        self.engine = engine
        self._roster = roster
        self._tracker = tracker
        self._metrics = metrics
        self._clock = clock
        self._every_s = every_s
        self._runner = runner
        self._zones = {name: ZoneInfo(name) for name in engine.zone_names()}
        self._actions = {r.name: r.action for r in engine.rules if r.action}
        # The latest firings and clearings, newest last, for the API and for inspection.
        self.recent: deque[RuleEvent] = deque(maxlen=1000)
        for rule in engine.rules:
            metrics.agents_stuck.labels(rule.name).set(0)

    @property
    def needs_queues(self) -> bool:
        """Whether a rule selects by queue (the roster must then carry queue memberships)."""
        return any(r.selector is not None and r.selector.queues for r in self.engine.rules)

    async def run(self) -> None:
        while True:
            await self.evaluate()
            await self._clock.sleep(self._every_s)

    async def evaluate(self) -> list[RuleEvent]:
        """One evaluation of every rule for every watched agent."""
        tracker, could_match = self._tracker, self.engine.could_match
        both, values = tracker.both, tracker.values
        roster = self._roster()
        # Only the agents some rule could match are read in full: the others (at a contact
        # centre, nearly everyone, On Queue and IDLE or INTERACTING) cost two look-ups each.
        rows: list[tuple[Agent, StatusState | None, StatusState | None]] = []
        for start in range(0, len(roster), _READ_CHUNK):
            rows += [
                (agent, *both(agent.id))
                for agent in roster[start : start + _READ_CHUNK]
                if could_match(*values(agent.id))
            ]
            # Reading every agent's state takes milliseconds at 20,000 agents: frames and
            # scrapes get their turn in between. A state read a moment before the others is
            # judged as of a moment later; the thresholds are minutes.
            await asyncio.sleep(0)
        present = {agent.id for agent in roster}
        events: list[RuleEvent] = []
        for step in self.engine.steps(self._clock.now_ms(), rows, self._zones, present):
            self._record(step)
            events += step
            # The rules take tens of milliseconds at 20,000 agents, and a round where thousands
            # of agents fire or clear (the end of a shift) as many again for their metrics and
            # log lines: frames and scrapes get their turn between two steps. Only this task
            # evaluates, so the steps never mix with another evaluation's.
            await asyncio.sleep(0)
        # Actions last, once the round is complete: they wait for Genesys.
        for event in events:
            if event.kind == "fire":
                await self._act(event)
        for rule, count in self.engine.counts().items():
            self._metrics.agents_stuck.labels(rule).set(count)
        return events

    def _record(self, events: list[RuleEvent]) -> None:
        """Metrics, log lines and `recent` for some of a round's events."""
        self.recent.extend(events)
        for event in events:
            firing = event.kind == "fire"
            self._metrics.agents.set_stuck(event.agent_id, event.rule, firing)
            if firing:
                held_s = round((event.at_ms - event.since_ms) / 1000)
                self._metrics.rule_firings.labels(event.rule).inc()
                log.warning("stuck_agent", rule=event.rule, agent_id=event.agent_id, held_s=held_s)
            else:
                log.info("stuck_agent_cleared", rule=event.rule, agent_id=event.agent_id)

    def firing_for(self, agent_id: str) -> list[str]:
        return self.engine.firing_for(agent_id)

    async def _act(self, event: RuleEvent) -> None:
        target = self._actions.get(event.rule)
        if target is None or self._runner is None:
            return
        request = ActionRequest(
            target=target,
            selector=Selector.from_mapping({"agents": [event.agent_id]}),
            actor=f"rule:{event.rule}",
        )
        try:
            await self._runner.run(request)
        except MonitorError as exc:
            # The rule keeps firing and the failure is audited by the runner when it got that far;
            # a refused action must not stop the watcher.
            log.warning(
                "stuck_action_failed", rule=event.rule, agent_id=event.agent_id, error=str(exc)
            )
