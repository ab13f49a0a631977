"""Latency: from the simulator emitting an event to its transition committed and visible on
/metrics, p50 and p99, at 10% and at 80% of the maximum rate measured in the same run.

    .venv/bin/python -m bench.latency [--seconds 30] [--maximum EVENTS_PER_S] [--quick] [--json PATH]

The set-up is the ingest benchmark's: 20,000 agents, the daemon (`python -m monitor run`) on a
copy of a database holding two million transitions. First the maximum rate is measured by pouring
frames as fast as the daemon takes them (as bench.ingest does). Then the firehose streams frames
at 10%, then at 80%, of that rate, each for `--seconds`; they are built before each phase, as the
burst's are, and every frame's emission time is noted (time.perf_counter(), the moment it is
queued on the socket).

Every event is measured, not a sample: a watcher process tails the transitions table (a
read-only connection in WAL mode, polled every millisecond) and notes when each row appears.
The daemon updates the metrics before it queues a transition for the writer, so a committed
transition is already on /metrics; a scraper process checks that on real scrapes every few
seconds: each agent's state-change timestamp on /metrics must be at least as new as the newest of
its events committed before the scrape began.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import multiprocessing as mp
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench.dbfill import CACHE, copy_database, prefilled
from bench.harness import (
    DAEMON_CLIENT,
    Check,
    CpuMeter,
    DaemonProcess,
    DbReader,
    add_quiet_option,
    bucket_quantile,
    bucket_total,
    count_above,
    daemon_env,
    dump_json,
    free_port,
    histogram_between,
    percentile,
    quiet,
    report_checks,
    set_quiet,
    sim_settings,
)
from bench.ingest import month_start_ms, through_daemon
from monitor.clock import Clock, ScaledClock
from monitor.sim.firehose import Firehose, Shot
from monitor.sim.org import Org
from monitor.sim.server import Simulator

TARGET_P99_MS = 250.0
# Planning a phase's frames takes about 6 µs each. Their event times start after a lead that
# allows 10 µs each, so that the first is still ahead when planning ends.
_PLAN_LEAD_MS = 2000
_PLAN_MS_PER_SHOT = 0.01
SHARES = (0.1, 0.8)
_STAMP = re.compile(
    r'^genesys_agent_(presence|routing_status)_changed_timestamp_seconds\{agent_id="([^"]+)"\} (\S+)'
)
_KIND = {"presence": "presence", "routing_status": "routing"}

Key = tuple[int, str, int]  # (agent key, kind, event ms)


# --- the watcher and the scraper (processes of their own) --------------------------------------


def watcher(db: str, start_id: int, conn: Connection) -> None:
    """Note when each new transition row becomes visible; stop on any message from `conn`."""
    # `seen` grows by every event; the collector's passes over it would hold up the polling and
    # make rows committed meanwhile look late. It holds no cycles.
    gc.disable()
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    seen: dict[Key, float] = {}
    last = start_id
    query = "SELECT id, agent, kind, event_ms FROM transitions WHERE id > ? ORDER BY id"
    conn.send("watching")
    while not conn.poll():
        rows = reader.execute(query, (last,)).fetchall()
        now = time.perf_counter()
        for row_id, agent, kind, event_ms in rows:
            seen[agent, kind, event_ms] = now
            last = row_id
        time.sleep(0.001)
    conn.recv()
    reader.close()
    conn.send(seen)


def scraper(url: str, every: float, conn: Connection) -> None:
    """Scrape every `every` seconds until told to stop; send back, per scrape, when it began and
    each agent's state-change timestamps (ms)."""
    # The pages are parsed after the phase: parsing one (20,000 agents) takes a core for about
    # half a second, which the daemon and the simulator would otherwise lose mid-phase.
    pages: list[tuple[float, str]] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        while not conn.poll(every):
            started = time.perf_counter()
            pages.append((started, http.get("/metrics").text))
    conn.recv()
    out: list[tuple[float, dict[tuple[str, str], int]]] = []
    for started, text in pages:
        stamps = {}
        for line in text.splitlines():
            match = _STAMP.match(line)
            if match:
                kind, agent, value = match.groups()
                stamps[agent, _KIND[kind]] = round(float(value) * 1000)
        out.append((started, stamps))
    conn.send(out)


class Helper:
    """A helper process with a pipe: started, told to stop, its result collected."""

    def __init__(self, target: Any, *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, there = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(*args, there), daemon=True)
        self.process.start()

    async def recv(self, within: float = 600) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(None, self.conn.recv), within)

    async def finish(self) -> Any:
        self.conn.send("stop")
        try:
            return await self.recv()
        finally:
            self.process.join(10)


# --- one phase ---------------------------------------------------------------------------------


async def phase(
    daemon: DaemonProcess,
    db: DbReader,
    db_path: Path,
    firehose: Firehose,
    clock: Clock,
    rate: float,
    seconds: float,
    scrape_every: float,
) -> dict[str, Any]:
    # The phase's frames are built before it, as the burst's are: built on the fly, they took the
    # simulator about 11 µs each, on the same two cores as the daemon (at 65,000 events/s, 7.3
    # CPU s of the 20 that a 10 s phase has). Their event times are those they will be sent at;
    # the phase waits for the first one.
    count = math.ceil(rate * seconds)
    start_ms = clock.now_ms() + _PLAN_LEAD_MS + math.ceil(count * _PLAN_MS_PER_SHOT)
    shots = firehose.plan(count, start_ms, rate)
    await daemon.settled()
    # The daemon's own histograms, before and after: how late its event loop ran (the main
    # thread busy) and how long its commits took (SQLite), to tell where the latency comes from.
    before = await daemon.metrics()
    await quiet()
    keys = db.key_of()
    watch = Helper(watcher, str(db_path), db.last_id())
    if await watch.recv(60) != "watching":
        raise RuntimeError("the watcher did not start")
    scrape = Helper(scraper, daemon.url, scrape_every)
    emitted: list[tuple[Shot, float]] = []
    meter = CpuMeter({"daemon": daemon.pid, "simulator": os.getpid()})
    await clock.sleep(max(0.0, (start_ms - clock.now_ms()) / 1000))
    # The collector would walk the planned shots and `emitted` (a million objects and more),
    # stopping the simulator for a fraction of a second every few seconds; the frames held up
    # then reach the daemon as a burst. Nothing made during the phase forms cycles.
    gc.disable()
    try:
        sent = await firehose.stream(
            rate,
            seconds,
            DAEMON_CLIENT.client_id,
            shots=shots,
            on_shot=lambda shot, at: emitted.append((shot, at)),
        )
    finally:
        gc.enable()
    cpu = meter.read()
    await daemon.settled()
    await asyncio.sleep(0.05)  # the watcher's next poll sees the last commit
    scrapes = await scrape.finish()
    seen: dict[Key, float] = await watch.finish()
    after = await daemon.metrics()
    loop_lag = histogram_between(before, after, "monitor_event_loop_lag_seconds")
    commits = histogram_between(before, after, "monitor_db_write_batch_duration_seconds")

    latencies: list[float] = []
    committed: list[tuple[float, str, str, int]] = []
    missing = 0
    for shot, at in emitted:
        when = seen.get((keys.get(shot.agent_id, -1), shot.kind.value, shot.event_ms))
        if when is None:
            missing += 1
            continue
        latencies.append((when - at) * 1000)
        committed.append((when, shot.agent_id, shot.kind.value, shot.event_ms))
    checked, stale = visible_on_metrics(committed, scrapes)
    latencies.sort()
    return {
        "rate": rate,
        "events": sent,
        "achieved_rate": sent / seconds,
        "measured": len(latencies),
        "missing": missing,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "scrapes": len(scrapes),
        "metrics_checked": checked,
        "metrics_behind": stale,
        "cpu_daemon": cpu["daemon"],
        "cpu_simulator": cpu["simulator"],
        "cpu_other": cpu["other"],
        "loop_lag_p99_s": bucket_quantile(loop_lag, 0.99),
        "loop_lag_ticks": bucket_total(loop_lag),
        "loop_lag_over_250ms": count_above(loop_lag, 0.25),
        "commit_p99_s": bucket_quantile(commits, 0.99),
        "commits": bucket_total(commits),
    }


def visible_on_metrics(
    committed: Sequence[tuple[float, str, str, int]],
    scrapes: Sequence[tuple[float, dict[tuple[str, str], int]]],
) -> tuple[int, int]:
    """(pairs checked, pairs behind): for every scrape and every (agent, kind) with an event
    committed before the scrape began, /metrics must show that event's time or a newer one."""
    ordered = sorted(committed)
    newest: dict[tuple[str, str], int] = {}
    position = checked = behind = 0
    for started, stamps in sorted(scrapes, key=lambda s: s[0]):
        while position < len(ordered) and ordered[position][0] < started:
            _, agent, kind, event_ms = ordered[position]
            newest[agent, kind] = max(newest.get((agent, kind), 0), event_ms)
            position += 1
        for key, event_ms in newest.items():
            checked += 1
            if stamps.get(key, -1) < event_ms:
                behind += 1
    return checked, behind


# --- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, big: Path, work: Path) -> dict[str, Any]:
    async with Simulator.start(sim_settings(args.agents, custom_definitions=False)) as sim:
        firehose = Firehose(sim.org, sim.notifications, sim.clock)
        firehose.put_on_queue()
        burst = firehose.plan(args.burst, sim.clock.now_ms() + 1000, 50_000)
        db_path = copy_database(big, work / "monitor.db")
        env = daemon_env(
            sim.api_url,
            db_path,
            free_port(),
            GENESYS__USERS_PAGE_SIZE="500",
            LOG__LEVEL='"warning"',
        )
        daemon = await DaemonProcess.spawn(work, env)
        db = DbReader(db_path)
        try:
            await daemon.healthy(within=300)
            await daemon.idle()  # start-up work (the report cache) done
            maximum = await through_daemon(daemon, db, firehose, burst)
            print(
                f"maximum rate: {maximum['rate']:,.0f} events/s ({maximum['events']:,} events in "
                f"{maximum['seconds']:.1f} s; daemon CPU {maximum['cpu_daemon']:.1f} s, rest of "
                f"machine {maximum['cpu_other']:.1f} s)",
                flush=True,
            )
            # --maximum: the same rates as another run, to compare two builds at equal load.
            base = args.maximum or maximum["rate"]
            phases = []
            for share in SHARES:
                p = await phase(
                    daemon,
                    db,
                    db_path,
                    firehose,
                    sim.clock,
                    share * base,
                    args.seconds,
                    args.scrape_every,
                )
                p["share"] = share
                phases.append(p)
                print(
                    f"{share:>4.0%} ({p['rate']:,.0f}/s, sent {p['achieved_rate']:,.0f}/s): "
                    f"p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.0f} ms "
                    f"over {p['measured']:,} events ({p['missing']} not committed); /metrics "
                    f"behind in {p['metrics_behind']} of {p['metrics_checked']:,} checks over "
                    f"{p['scrapes']} scrapes; CPU s: daemon {p['cpu_daemon']:.1f}, simulator "
                    f"{p['cpu_simulator']:.1f}, rest of machine {p['cpu_other']:.1f}; event-loop lag p99 <= "
                    f"{p['loop_lag_p99_s']} s ({p['loop_lag_over_250ms']:.0f} of "
                    f"{p['loop_lag_ticks']:.0f} ticks over 0.25 s); commit p99 <= "
                    f"{p['commit_p99_s']} s over {p['commits']:.0f} commits",
                    flush=True,
                )
        finally:
            code = await daemon.stop()
            db.close()
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code}; see {daemon.log}")
    return {"agents": args.agents, "maximum": maximum, "phases": phases}


def checks(result: dict[str, Any]) -> list[Check]:
    out = []
    for p in result["phases"]:
        out.append(
            Check(
                f"p99 at {p['share']:.0%} of the maximum rate",
                f"{p['p99_ms']:.1f} ms (p50 {p['p50_ms']:.1f} ms)",
                f"< {TARGET_P99_MS:.0f} ms",
                p["p99_ms"] < TARGET_P99_MS,
            )
        )
        out.append(
            Check(
                f"every event committed and on /metrics at {p['share']:.0%}",
                f"{p['missing']} missing, /metrics behind in {p['metrics_behind']} checks",
                "0 and 0",
                p["missing"] == 0 and p["metrics_behind"] == 0 and p["metrics_checked"] > 0,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--prefill", type=int, default=2_000_000)
    parser.add_argument("--burst", type=int, default=300_000, help="events to find the maximum")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds at each rate")
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument(
        "--maximum", type=float, help="events/s the shares are of, instead of the burst's rate"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    if args.quick:
        args.agents, args.prefill, args.burst, args.seconds = 2_000, 200_000, 60_000, 8.0
        args.scrape_every = 2.0
    ids = list(Org(sim_settings(args.agents), ScaledClock()).agents)
    big = prefilled(args.prefill, len(ids), month_start_ms(), ids=ids)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="latency-") as folder:
        result = asyncio.run(run(args, big, Path(folder)))
    print()
    found = checks(result)
    ok = report_checks(found)
    dump_json(args.json, result, found)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
