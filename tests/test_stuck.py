"""Stuck-agent rules against the simulator's working day: they fire on the agents the behaviour
model got stuck, and on nobody who merely passed through a state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.core.rules import DEFAULT_RULES, Rule
from monitor.core.timefmt import parse_iso_ms
from monitor.sim.org import Change
from tests.daemon import running, sim_settings
from tests.support import eventually

FACTOR = 2000.0
HOUR_MS = 3_600_000
THRESHOLD_MS = {rule.name: int(rule.threshold_s * 1000) for rule in DEFAULT_RULES}


def at_hour(hour: int) -> int:
    day = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


def stretches(truth: list[Change], agent_id: str, rule: Rule) -> list[tuple[int, Change | None]]:
    """When each stretch in which the agent met the rule's condition began (ground truth), and
    the change that ended it (None: still going on)."""
    presence, routing = Presence.OFFLINE.value, RoutingStatus.OFF_QUEUE.value
    result: list[tuple[int, Change | None]] = []
    began: int | None = None
    for change in truth:
        if change.agent_id != agent_id:
            continue
        if change.kind is Kind.PRESENCE:
            presence = change.value
        else:
            routing = change.value
        holds = (rule.presences is None or presence in rule.presences) and (
            rule.routing is None or routing in rule.routing
        )
        if holds and began is None:
            began = change.event_ms
        elif not holds and began is not None:
            result.append((began, change))
            began = None
    if began is not None:
        result.append((began, None))
    return result


@pytest.mark.slow
async def test_default_rules_fire_on_stuck_agents_only(tmp_path: Path) -> None:
    """Every stuck episode long enough fires its rule for its agent; no rule fires outside an
    episode of its kind."""
    start = at_hour(6)
    settings = sim_settings(
        agents=300,
        seed=5,
        start_ms=start,
        time_factor=FACTOR,
        stuck_fraction=0.4,
        heartbeat_interval_s=600,
    )
    async with running(
        tmp_path,
        settings,
        behaviour=True,
        MONITOR_STUCK__EVALUATE_EVERY_S="20",
        MONITOR_CHANNELS__PING_AFTER_S="1800",
        MONITOR_CHANNELS__PONG_TIMEOUT_S="600",
    ) as run:
        end = start + 9 * HOUR_MS
        await run.sim.clock.sleep((end - run.sim.clock.now_ms()) / 1000)
        assert run.sim.behaviour is not None
        episodes = list(run.sim.behaviour.episodes)
        events = list(run.daemon.stuck.recent)
        truth = list(run.sim.org.truth)
        seen = {
            (r["agent_id"], r["kind"], parse_iso_ms(r["event_time"]), r["to"]): parse_iso_ms(
                r["seen_time"]
            )
            async for r in run.daemon.store.export(None, None, None)
        }

    fires = [e for e in events if e.kind == "fire"]
    # No false alarm: each firing matches a stretch of the ground truth that began when the rule
    # says the condition began and that was still going on, as far as the daemon could know
    # (until it saw the change that ended it), for at least the threshold.
    for fire in fires:
        rule = next(r for r in DEFAULT_RULES if r.name == fire.rule)
        known_until = [
            2**63
            if ending is None
            else seen.get((fire.agent_id, ending.kind.value, ending.event_ms, ending.value), 2**63)
            for begin, ending in stretches(truth, fire.agent_id, rule)
            if abs(begin - fire.since_ms) <= 1000
        ]
        assert known_until, f"{fire.rule} fired for {fire.agent_id} without the condition"
        assert fire.at_ms - fire.since_ms >= rule.threshold_s * 1000
        assert fire.at_ms <= known_until[0] + 1000, "fired after the daemon saw it end"
    # No miss: each episode that lasted past its threshold (and the evaluation interval) fired.
    fired = {(e.agent_id, e.rule, e.since_ms) for e in fires}
    checked = 0
    for ep in episodes:
        if ep.end_ms > end or ep.end_ms - ep.start_ms < THRESHOLD_MS[ep.kind] + 60_000:
            continue
        checked += 1
        assert any(
            agent == ep.agent_id and rule == ep.kind and abs(since - ep.start_ms) <= 1000
            for agent, rule, since in fired
        ), f"{ep.kind} episode of {ep.agent_id} did not fire"
    kinds = {ep.kind for ep in episodes if ep.end_ms <= end}
    assert checked >= 6, "too few finished episodes to judge"
    assert len(kinds) == 6, f"not every kind of episode happened: {sorted(kinds)}"


async def test_a_firing_rule_is_exported_logged_and_can_act(tmp_path: Path) -> None:
    """A rule that fires shows in the metrics; a rule with an action acts (here: a NOT_RESPONDING
    agent made IDLE again), audited under the rule's name; the firing clears once it recovers."""
    toml = (
        '[[rules]]\nname = "not_responding"\nthreshold = "0.3s"\nclear_after = "0.1s"\n'
        'action = "On Queue"\n'
    )
    async with running(tmp_path, toml=toml, MONITOR_STUCK__EVALUATE_EVERY_S="0.05") as run:
        org = run.sim.org
        agent = next(iter(org.agents))
        org.set_system_presence(agent, Presence.ON_QUEUE, cause="test")
        org.set_routing(agent, RoutingStatus.NOT_RESPONDING, cause="test")

        async def audited() -> bool:
            return any(r.actor == "rule:not_responding" for r in await run.daemon.store.actions())

        await eventually(audited, within=10)
        # Going On Queue again from NOT_RESPONDING: the sim's coupling makes routing IDLE.
        assert (
            org.agent(agent).routing_status is RoutingStatus.IDLE
            or org.presence_of(org.agent(agent)) is Presence.ON_QUEUE
        )
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{run.url}/metrics")).text
        assert 'genesys_agents_stuck{rule="not_responding"}' in text
        await eventually(lambda: not run.daemon.stuck.firing_for(agent), within=10)
        kinds = [e.kind for e in run.daemon.stuck.recent if e.agent_id == agent]
        assert kinds[:2] == ["fire", "clear"]
