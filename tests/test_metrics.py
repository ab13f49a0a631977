"""Metrics: names and values as Prometheus sees them, and the exposition passes promtool."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from monitor.core.model import Agent, Kind, Source, Transition
from monitor.metrics import Metrics, escape
from tests.daemon import running

A = "9ed7d9f6-0c59-4360-ac54-40dd35eb9c2f"
B = "e40f3a1c-5b7d-4c2e-9f10-2a3b4c5d6e7f"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: scripts/system-packages installs Debian's prometheus")
    return path


def transition(agent: str, kind: Kind, to: str, at: int, late: bool = False) -> Transition:
    return Transition(agent, kind, None, to, None, at, at, Source.LIVE, late)


def test_only_the_current_state_is_exported_per_agent() -> None:
    """One series per agent per kind, for its current value; counts follow."""
    m = Metrics(by=("division",))
    m.agents.set_agents([Agent(A, "Ann", division_name="Home"), Agent(B, 'Bob "B"')])
    m.on_transition(transition(A, Kind.ROUTING, "IDLE", 1_000))
    m.on_transition(transition(A, Kind.ROUTING, "INTERACTING", 2_000))
    m.on_transition(transition(B, Kind.ROUTING, "IDLE", 3_000))
    text = b"".join(m.render()).decode()
    assert f'genesys_agent_routing_status{{agent_id="{A}",routing_status="INTERACTING"}} 1' in text
    assert f'agent_id="{A}",routing_status="IDLE"' not in text
    assert f'genesys_agent_routing_status_changed_timestamp_seconds{{agent_id="{A}"}} 2.000' in text
    assert (
        'genesys_agents{presence="UNKNOWN",routing_status="INTERACTING",division="Home"} 1' in text
    )
    assert 'agent_name="Bob \\"B\\""' in text


def test_late_transitions_count_but_do_not_move_the_state() -> None:
    """A late transition is counted, and the agent's current state stays."""
    m = Metrics()
    m.agents.set_agents([Agent(A, "Ann")])
    m.on_transition(transition(A, Kind.PRESENCE, "BREAK", 5_000))
    m.on_transition(transition(A, Kind.PRESENCE, "MEAL", 4_000, late=True))
    text = b"".join(m.render()).decode()
    assert f'genesys_agent_presence{{agent_id="{A}",presence="BREAK"}} 1' in text
    assert 'genesys_transitions_total{kind="presence",source="live"} 2.0' in text


def test_departed_agents_disappear() -> None:
    """An agent leaving the roster takes every one of its series with it."""
    m = Metrics()
    m.agents.set_agents([Agent(A, "Ann"), Agent(B, "Bob")])
    m.on_transition(transition(A, Kind.PRESENCE, "BREAK", 5_000))
    m.agents.set_agents([Agent(B, "Bob")])
    text = b"".join(m.render()).decode()
    assert A not in text
    assert "genesys_agents_watched 1" in text


def test_per_agent_series_can_be_switched_off() -> None:
    """With per_agent off only aggregates are exported."""
    m = Metrics(per_agent=False)
    m.agents.set_agents([Agent(A, "Ann")])
    m.on_transition(transition(A, Kind.PRESENCE, "BREAK", 5_000))
    text = b"".join(m.render()).decode()
    assert A not in text
    assert 'genesys_agents{presence="BREAK",routing_status="UNKNOWN"} 1' in text


def test_label_escaping() -> None:
    """Backslashes, quotes and newlines are escaped as the text format requires."""
    assert escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


async def test_live_exposition_passes_promtool(tmp_path: Path) -> None:
    """The daemon's /metrics, with real agents and states, passes `promtool check metrics`."""
    async with running(tmp_path) as run:
        text = await run.metrics()
    assert "genesys_agent_presence{" in text
    assert "monitor_channel_up{" in text
    check = await asyncio.create_subprocess_exec(
        promtool(),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await check.communicate(text.encode())
    assert check.returncode == 0, output.decode()


def test_queue_names_are_an_info_metric() -> None:
    """Queue names are exported once each, for joins on queue_id."""
    m = Metrics(by=("queue",))
    m.agents.set_queue_names({"q1": 'Sales "EU"'})
    text = b"".join(m.render()).decode()
    assert 'genesys_queue_info{queue_id="q1",queue_name="Sales \\"EU\\""} 1' in text


def test_known_counters_start_at_zero() -> None:
    """Counters with known label values exist at 0 before their first event."""
    m = Metrics()
    m.known_schedules(["end-of-day"])
    text = b"".join(m.render()).decode()
    assert 'monitor_channel_reconnects_total{reason="dead"} 0.0' in text
    assert 'monitor_schedule_runs_total{schedule="end-of-day"} 0.0' in text


def test_catching_up_in_chunks_renders_what_catching_up_at_once_does() -> None:
    """Agents brought up to date a chunk at a time, with more changes between chunks, render
    exactly as when every change is caught up in one go; `behind` counts what is left."""
    agents = [Agent(f"agent-{n:04d}", f"Agent {n}") for n in range(2_500)]
    chunked, whole = Metrics(), Metrics()
    for m in (chunked, whole):
        m.agents.set_agents(agents)
        for n, agent in enumerate(agents):
            m.on_transition(transition(agent.id, Kind.ROUTING, "IDLE", 1_000 + n))
    assert chunked.agents.behind == 2_500
    chunked.agents.catch_up(1_000)
    assert chunked.agents.behind == 1_500
    for m in (chunked, whole):
        for agent in agents[::7]:
            m.on_transition(transition(agent.id, Kind.ROUTING, "INTERACTING", 9_000))
    chunked.agents.catch_up(1_000)
    assert chunked.agents.behind > 0  # render() has the rest to do
    assert b"".join(chunked.render()) == b"".join(whole.render())
    assert chunked.agents.behind == 0
