"""Ingest throughput: events a second from frame to committed SQLite row (metrics updated), against
the ceiling of a bare websocket client and against the naive design, all in one run.

    .venv/bin/python -m bench.ingest [--quick] [--rounds 3] [--profile] [--json PATH]

The simulator (this process) serves an org of 20,000 agents and pours firehose frames (presence
and routing changes, built ahead; monitor/sim/firehose.py) into subscribed sockets as fast as
the consumer reads them. Three consumers get the very same frames, one after the other, each in
a process of its own (the machine has two cores: the simulator on one, the consumer on the other):

1. the ceiling: a bare websockets client that only receives and parses each frame (json.loads);
   for reference the same on the daemon's own websocket, which reads ordinary frames without the
   library's parser (what the daemon's own work costs is daemon / that), and with a hand-written
   frame reader and no library at all (see bench/consumers.py);
2. the daemon (`python -m monitor run`) on a copy of a database that already holds two million
   transitions of the same agents; an event counts once its row is committed, which the
   benchmark sees by reading the database (metrics are updated before a transition is queued for
   the writer, so a committed row has its metrics updated); the counters on /metrics are
   checked against the number of events afterwards;
3. the naive design: the daemon's decoder, then one INSERT and one commit per event with
   SQLite's default journal and synchronous settings (on a fresh database, which only flatters
   it).

Every rate is events divided by the time from the first frame queued to the last event done
(parsed; committed). The CPU seconds of each process and of the rest of the machine are printed
beside each figure: other work on the machine takes the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import consumers
from bench.dbfill import CACHE, copy_database, prefilled
from bench.harness import (
    BENCH_CLIENT,
    DAEMON_CLIENT,
    Check,
    CpuMeter,
    DaemonProcess,
    DbReader,
    add_quiet_option,
    connected,
    daemon_env,
    dump_json,
    fmt_rate,
    free_port,
    metric,
    quiet,
    report_checks,
    set_quiet,
    sim_settings,
    subscribe_all,
    until,
)
from monitor.clock import ScaledClock
from monitor.sim.firehose import CYCLE, Firehose, Shot
from monitor.sim.org import Org
from monitor.sim.server import Simulator

TARGET_SHARE = 0.35
TARGET_RATE = 30_000
TARGET_NAIVE = 20.0


def month_start_ms() -> int:
    """The first of this month (UTC): the end of the prefilled history, so the cached database
    stays valid for a month and its history is recent enough to be kept by retention."""
    now = datetime.now(UTC)
    return int(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


async def _recv(conn: Any, within: float) -> Any:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.run_in_executor(None, conn.recv), within)


async def consume(
    sim: Simulator,
    firehose: Firehose,
    shots: Sequence[Shot],
    target: Callable[..., None],
    uris: list[str],
    *extra: str,
) -> dict[str, float]:
    """Pour `shots` to a consumer process; its rate and the CPU it and the simulator used."""
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    process = ctx.Process(target=target, args=(uris, len(shots), *extra, there), daemon=True)
    process.start()
    try:
        await quiet()
        if await _recv(here, 60) != "connected":
            raise RuntimeError("the consumer did not connect")
        client = BENCH_CLIENT.client_id
        await until(lambda: connected(sim, client) == len(uris), 30, "consumer sockets")
        meter = CpuMeter({"simulator": os.getpid()})
        started = time.perf_counter()
        queued = await firehose.pour(shots, client)
        if queued != len(shots):
            raise RuntimeError(f"{queued} frames queued for {len(shots)} shots")
        result = await _recv(here, 3600)
        cpu = meter.read()
    finally:
        process.kill()
        process.join()
    seconds = result["done"] - started
    return {
        "events": len(shots),
        "seconds": seconds,
        "rate": len(shots) / seconds,
        "cpu_consumer": result["cpu"],
        "cpu_simulator": cpu["simulator"],
        "cpu_other": cpu["other"] - result["cpu"],
    }


async def through_daemon(
    daemon: DaemonProcess, db: DbReader, firehose: Firehose, shots: Sequence[Shot]
) -> dict[str, float]:
    """Pour `shots` to the daemon; done when as many new rows are committed."""
    await daemon.settled()
    await quiet()
    base = db.last_id()
    meter = CpuMeter({"daemon": daemon.pid, "simulator": os.getpid()})
    started = time.perf_counter()
    pour = asyncio.create_task(firehose.pour(shots, DAEMON_CLIENT.client_id))
    want = len(shots)
    while db.last_id() - base < want:
        if pour.done() and pour.exception() is not None:
            raise pour.exception()  # type: ignore[misc]
        if not daemon.running:
            raise RuntimeError(f"the daemon exited; see {daemon.log}")
        await asyncio.sleep(0.005)
    done = time.perf_counter()
    cpu = meter.read()
    queued = await pour
    if queued != len(shots):
        raise RuntimeError(f"{queued} frames queued for {len(shots)} shots")
    seconds = done - started
    return {
        "events": len(shots),
        "seconds": seconds,
        "rate": len(shots) / seconds,
        "cpu_daemon": cpu["daemon"],
        "cpu_simulator": cpu["simulator"],
        "cpu_other": cpu["other"],
    }


def _line(name: str, r: dict[str, float], consumer: str) -> str:
    return (
        f"  {name:<34} {fmt_rate(r['rate']):>11}  ({r['events']:,.0f} in {r['seconds']:.2f} s; "
        f"CPU s: {consumer} {r[f'cpu_{consumer}']:.2f}, simulator {r['cpu_simulator']:.2f}, "
        f"rest of machine {r['cpu_other']:.2f})"
    )


def _median(rounds: Sequence[dict[str, float]]) -> dict[str, float]:
    return min(rounds, key=lambda r: abs(r["rate"] - statistics.median(x["rate"] for x in rounds)))


async def run(args: argparse.Namespace, big: Path, work: Path) -> dict[str, Any]:
    settings = sim_settings(args.agents, custom_definitions=False)
    async with Simulator.start(settings) as sim:
        firehose = Firehose(sim.org, sim.notifications, sim.clock)
        firehose.put_on_queue()
        per_round = args.events
        planned = time.perf_counter()
        shots = firehose.plan(per_round * args.rounds, sim.clock.now_ms() + 1000, 50_000)
        print(f"planned {len(shots):,} frames in {time.perf_counter() - planned:.1f} s", flush=True)
        rounds = [shots[i * per_round : (i + 1) * per_round] for i in range(args.rounds)]

        uris = await subscribe_all(sim, BENCH_CLIENT, firehose.agents)
        ceiling, own, raw = [], [], []
        for number, batch in enumerate(rounds, 1):
            ceiling.append(await consume(sim, firehose, batch, consumers.bare_library, uris))
            print(_line(f"ceiling (websockets), round {number}", ceiling[-1], "consumer"))
            own.append(await consume(sim, firehose, batch, consumers.bare_socket, uris))
            print(_line(f"the daemon's socket, round {number}", own[-1], "consumer"))
            if not args.no_raw:
                raw.append(await consume(sim, firehose, batch, consumers.bare_raw, uris))
                print(_line(f"hand-written reader, round {number}", raw[-1], "consumer"))

        db_path = copy_database(big, work / "monitor.db")
        env = daemon_env(
            sim.api_url,
            db_path,
            free_port(),
            GENESYS__USERS_PAGE_SIZE="500",
            LOG__LEVEL='"warning"',
        )
        profile = work / "daemon.prof" if args.profile else None
        daemon = await DaemonProcess.spawn(work, env, profile=profile)
        db = DbReader(db_path)
        try:
            started = await daemon.healthy(within=300)
            cpu = daemon.cpu_seconds()
            warm = await daemon.idle()
            warm_cpu = daemon.cpu_seconds() - cpu
            print(
                f"daemon healthy {started:.1f} s after start, then busy with its start-up work "
                f"(the report cache) for {warm:.1f} s more ({warm_cpu:.1f} CPU s)",
                flush=True,
            )
            before = await daemon.metrics()
            results = []
            for number, batch in enumerate(rounds, 1):
                results.append(await through_daemon(daemon, db, firehose, batch))
                print(_line(f"daemon, round {number}", results[-1], "daemon"), flush=True)
            await daemon.settled()
            after = await daemon.metrics()
        finally:
            code = await daemon.stop()
            db.close()
        if code != 0:
            raise RuntimeError(f"the daemon exited with {code}; see {daemon.log}")

        naive_shots = rounds[0][: args.naive_events]
        naive = await consume(
            sim,
            firehose,
            naive_shots,
            consumers.naive,
            uris,
            str(work / "naive.db"),
        )
        print(_line("naive design", naive, "consumer"), flush=True)

    events = per_round * args.rounds
    live = metric(after, "genesys_transitions_total", source="live") - metric(
        before, "genesys_transitions_total", source="live"
    )
    frames = metric(after, "monitor_frames_received_total", frame="update") - metric(
        before, "monitor_frames_received_total", frame="update"
    )
    dropped = metric(after, "monitor_updates_dropped_total") - metric(
        before, "monitor_updates_dropped_total"
    )
    settled = None
    if events % (len(CYCLE) * args.agents) == 0:
        # Whole rounds of the cycle bring every agent back to On Queue and IDLE.
        settled = metric(after, "genesys_agents", presence="ON_QUEUE", routing_status="IDLE")
    result = {
        "agents": args.agents,
        "prefilled_transitions": args.prefill,
        "events_per_round": per_round,
        "rounds": args.rounds,
        "daemon_start_s": started,
        "daemon_warm_up_s": warm,
        "daemon_warm_up_cpu_s": warm_cpu,
        "ceiling": ceiling,
        "own_socket": own,
        "raw": raw,
        "daemon": results,
        "naive": naive,
        "metrics": {
            "live_transitions": live,
            "update_frames": frames,
            "updates_dropped": dropped,
            "agents_on_queue_idle": settled,
        },
    }
    if profile is not None:
        result["profile"] = str(profile)
    return result


def checks(result: dict[str, Any]) -> list[Check]:
    daemon = _median(result["daemon"])["rate"]
    ceiling = _median(result["ceiling"])["rate"]
    naive = result["naive"]["rate"]
    events = result["events_per_round"] * result["rounds"]
    m = result["metrics"]
    out = [
        Check(
            "daemon / ceiling",
            f"{daemon / ceiling:.2f} ({fmt_rate(daemon)} / {fmt_rate(ceiling)})",
            f">= {TARGET_SHARE}",
            daemon / ceiling >= TARGET_SHARE,
        ),
        Check(
            "daemon events per second",
            fmt_rate(daemon),
            f">= {TARGET_RATE:,}/s on {result['prefilled_transitions']:,} transitions",
            daemon >= TARGET_RATE,
        ),
        Check(
            "daemon / naive design",
            f"{daemon / naive:,.0f}x ({fmt_rate(daemon)} / {fmt_rate(naive)})",
            f">= {TARGET_NAIVE:.0f}x",
            daemon / naive >= TARGET_NAIVE,
        ),
        Check(
            "every event recorded, metrics updated",
            f"{m['live_transitions']:,.0f} live transitions, {m['update_frames']:,.0f} update "
            f"frames, {m['updates_dropped']:,.0f} dropped, for {events:,} events",
            "all equal, none dropped",
            m["live_transitions"] == events
            and m["update_frames"] == events
            and m["updates_dropped"] == 0,
        ),
    ]
    if m["agents_on_queue_idle"] is not None:
        out.append(
            Check(
                "final state on /metrics",
                f"{m['agents_on_queue_idle']:,.0f} agents On Queue and IDLE",
                f"all {result['agents']:,}",
                m["agents_on_queue_idle"] == result["agents"],
            )
        )
    return out


def references(result: dict[str, Any]) -> list[str]:
    """The daemon's rate against the other receivers, for scale (not targets of the issue)."""
    daemon = _median(result["daemon"])["rate"]
    out = []
    for key, name in (("own_socket", "the daemon's socket"), ("raw", "hand-written reader")):
        if result[key]:
            other = _median(result[key])["rate"]
            out.append(
                f"  daemon / {name:<22} {daemon / other:.2f} ({fmt_rate(daemon)} / "
                f"{fmt_rate(other)})"
            )
    return out


def print_profile(path: Path, top: int = 25) -> None:
    stats = pstats.Stats(str(path))
    shutil.copy(path, CACHE / "ingest-daemon.prof")
    print(f"\nprofile of the daemon ({path}), by own time:")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=360_000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per consumer (median kept)")
    parser.add_argument("--prefill", type=int, default=2_000_000)
    parser.add_argument("--naive-events", type=int, default=2_000)
    parser.add_argument("--no-raw", action="store_true", help="skip the hand-written reader")
    parser.add_argument("--profile", action="store_true", help="run the daemon under cProfile")
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    if args.quick:
        args.agents, args.events, args.rounds = 2_000, 60_000, 1
        args.prefill, args.naive_events = 200_000, 300
    # The org's agent ids, for a database that holds their history.
    ids = list(Org(sim_settings(args.agents), ScaledClock()).agents)
    big = prefilled(args.prefill, len(ids), month_start_ms(), ids=ids)
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="ingest-") as folder:
        result = asyncio.run(run(args, big, Path(folder)))
        print()
        ok = report_checks(checks(result))
        print("\nfor scale (not targets):", *references(result), sep="\n")
        dump_json(args.json, result, checks(result))
        if args.profile:
            print_profile(Path(result["profile"]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
