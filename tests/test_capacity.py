"""Genesys's limits at full scale: 1,000 topics a channel, 20 channels an OAuth client."""

from __future__ import annotations

from pathlib import Path

from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.sim.settings import OAuthClient
from tests.daemon import running, sim_settings
from tests.support import eventually

CLIENTS = (OAuthClient("sim-client", "sim-secret"), OAuthClient("second", "second-secret"))


async def test_20000_agents_fit_in_one_client_with_combined_topics(tmp_path: Path) -> None:
    """20,000 agents: 20 channels of 1,000 combined topics on one client, all live."""
    async with running(
        tmp_path, sim_settings(agents=20_000), MONITOR_GENESYS__USERS_PAGE_SIZE="500"
    ) as run:
        slots = run.daemon.pool.slots
        assert len(slots) == 20
        assert {len(s.agents) for s in slots.values()} == {1000}
        last = list(run.sim.org.agents)[-1]
        run.sim.org.set_system_presence(last, Presence.ON_QUEUE, cause="test")
        await eventually(lambda: run.state(last, Kind.ROUTING) == RoutingStatus.IDLE)


async def test_10000_agents_fit_in_one_client_with_separate_topics(tmp_path: Path) -> None:
    """With two topics per agent, 10,000 agents take the 20 channels of one client."""
    async with running(
        tmp_path,
        sim_settings(agents=10_000),
        MONITOR_GENESYS__USERS_PAGE_SIZE="500",
        MONITOR_GENESYS__TOPICS='"separate"',
    ) as run:
        assert len(run.daemon.pool.slots) == 20
        assert {len(s.agents) for s in run.daemon.pool.slots.values()} == {500}
        last = list(run.sim.org.agents)[-1]
        run.sim.org.set_system_presence(last, Presence.MEAL, cause="test")
        await eventually(lambda: run.state(last, Kind.PRESENCE) == Presence.MEAL)


async def test_25000_agents_over_two_clients(tmp_path: Path) -> None:
    """25,000 agents over two OAuth clients: channels spread over both, every agent live."""
    async with running(
        tmp_path,
        sim_settings(agents=25_000, clients=CLIENTS),
        MONITOR_GENESYS__USERS_PAGE_SIZE="500",
        # Past 20,000 users the roster and the first snapshot are read through search, 100 a
        # page: some 500 calls, which a 300-a-minute budget spreads over two minutes. The
        # simulator does not limit here, so neither does the daemon.
        MONITOR_GENESYS__REQUESTS_PER_MINUTE="5000",
        MONITOR_GENESYS__CLIENTS="[{}, {client_id_env = 'SECOND_ID', client_secret_env = 'SECOND_SECRET'}]",
        SECOND_ID="second",
        SECOND_SECRET="second-secret",
    ) as run:
        slots = run.daemon.pool.slots
        assert sum(len(s.agents) for s in slots.values()) == 25_000
        assert {key.client for key in slots} == {0, 1}
        assert all(s.up for s in slots.values())
        agents = list(run.sim.org.agents)
        for agent in (agents[0], agents[-1]):
            run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
        await eventually(
            lambda: all(
                run.state(a, Kind.PRESENCE) == Presence.BREAK for a in (agents[0], agents[-1])
            )
        )
