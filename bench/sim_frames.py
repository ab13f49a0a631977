"""How many notification frames a second the simulator can push to one client.

Starts the notification service for an org of 20,000 agents, subscribes all of them with combined
topics over 20 channels of 1,000 topics (the limits of one OAuth client) through the REST API, and
puts every agent On Queue while no socket is connected. A bare websockets client in another
process (so it has its own core) then connects to the channels, and the org's routing statuses are
toggled (IDLE <-> INTERACTING) as fast as the service accepts them. Prints the frames per second
that client received and the changes per second generated.

    .venv/bin/python bench/sim_frames.py [--agents 20000] [--seconds 5] [--sockets 20]

With `--sockets 1` the client connects to one channel only; changes for the other channels' agents
are then generated and dropped (no socket), as Genesys drops them.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.clock import ScaledClock
from monitor.core.model import Presence, RoutingStatus
from monitor.httpserver import HttpServer, Router
from monitor.sim.faults import Faults
from monitor.sim.http import genesys_errors
from monitor.sim.notifications import Notifications
from monitor.sim.org import Org
from monitor.sim.settings import SimSettings
from monitor.sim.tokens import Tokens

CHANNELS = "/api/v2/notifications/channels"
# Queued-but-unsent frames allowed before the generator waits: enough to keep the sockets busy,
# bounded so the measurement is of sending, not of filling memory.
MAX_BACKLOG = 20_000


async def wait_until(probe: Callable[[], bool], interval: float) -> None:
    """Poll `probe` until it is true."""
    while True:
        if probe():
            return
        await asyncio.sleep(interval)


def client_main(uris: list[str], conn: Connection) -> None:
    """The receiving side, in its own process: count event frames until told to stop."""
    asyncio.run(_client(uris, conn))


async def _client(uris: list[str], conn: Connection) -> None:
    sockets = [await connect(uri, compression=None, ping_interval=None) for uri in uris]
    counts = {"frames": 0, "first": 0.0, "last": 0.0, "cpu": 0.0}

    async def receive(ws: object) -> None:
        async for message in ws:  # type: ignore[attr-defined]
            if message.startswith('{"topicName":"v2.users.'):
                now = time.perf_counter()
                if not counts["frames"]:
                    counts["first"] = now
                counts["frames"] += 1
                counts["last"] = now

    tasks = [asyncio.create_task(receive(ws)) for ws in sockets]
    conn.send("connected")
    cpu = time.process_time()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "stop"
    counts["cpu"] = time.process_time() - cpu
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(counts)


async def run(agents: int, seconds: float, sockets: int) -> None:
    settings = SimSettings(agents=agents, custom_definitions=False)
    clock = ScaledClock()
    started = time.perf_counter()
    org = Org(settings, clock)
    tokens = Tokens(settings, clock, random.Random(1))
    notifications = Notifications(settings, org, clock, tokens, Faults(rng=random.Random(2)))
    router = Router()
    notifications.add_routes(router)
    rest = HttpServer(router, errors=genesys_errors)
    port = await rest.start("127.0.0.1", 0)
    await notifications.start("127.0.0.1", 0)
    token = tokens.issue("sim-client", "sim-secret")
    assert token is not None
    agent_ids = list(org.agents)
    channels = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token.value}"},
        timeout=60,
    ) as http:
        for start in range(0, len(agent_ids), settings.max_topics):
            channel = (await http.post(CHANNELS)).json()
            batch = agent_ids[start : start + settings.max_topics]
            body = [{"id": f"v2.users.{a}?presence&routingStatus"} for a in batch]
            response = await http.put(f"{CHANNELS}/{channel['id']}/subscriptions", json=body)
            response.raise_for_status()
            channels.append(channel)
    for agent_id in agent_ids:
        org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="bench")
    setup_s = time.perf_counter() - started

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    uris = [c["connectUri"] for c in channels[:sockets]]
    client = ctx.Process(target=client_main, args=(uris, there), daemon=True)
    client.start()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, here.recv) == "connected"
    await wait_until(
        lambda: sum(c.connected for c in notifications.channels.all()) == len(uris), 0.01
    )

    changes = 0
    generating = time.perf_counter()
    cpu = time.process_time()
    deadline = generating + seconds
    idle, busy = RoutingStatus.IDLE, RoutingStatus.INTERACTING
    statuses = dict.fromkeys(agent_ids, idle)
    set_routing = org.set_routing
    order = random.Random(3).sample(agent_ids, len(agent_ids))
    position = 0
    while time.perf_counter() < deadline:
        for agent_id in order[position : position + 500]:
            target = busy if statuses[agent_id] is idle else idle
            statuses[agent_id] = target
            set_routing(agent_id, target, cause="bench")
        changes += len(order[position : position + 500])
        position = (position + 500) % len(order)
        # Let the senders run; wait while they are behind, so memory stays bounded.
        await asyncio.sleep(0)
        await wait_until(lambda: notifications.backlog() <= MAX_BACKLOG, 0.001)
    generated_s = time.perf_counter() - generating
    await wait_until(lambda: not notifications.backlog(), 0.01)
    server_cpu = time.process_time() - cpu
    sent = len(notifications.delivered)
    here.send("stop")
    counts = await loop.run_in_executor(None, here.recv)
    client.join(10)
    await notifications.close()
    await rest.close()

    received_s = max(1e-9, counts["last"] - counts["first"])
    print(f"org: {agents} agents on {len(channels)} channels; set-up {setup_s:.1f} s")
    print(f"client sockets: {len(uris)}")
    print(f"changes generated: {changes} in {generated_s:.2f} s = {changes / generated_s:,.0f}/s")
    print(f"changes delivered to a socket: {sent}")
    print(
        f"frames received: {counts['frames']} in {received_s:.2f} s "
        f"= {counts['frames'] / received_s:,.0f} frames/s"
    )
    # The machine may be shared: CPU seconds say what the same work costs on an idle core.
    print(
        f"CPU: simulator {server_cpu:.2f} s ({changes / server_cpu:,.0f} changes per CPU-second, "
        f"org included); client {counts['cpu']:.2f} s "
        f"({counts['frames'] / max(1e-9, counts['cpu']):,.0f} frames per CPU-second)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sockets", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.agents, args.seconds, args.sockets))


if __name__ == "__main__":
    main()
