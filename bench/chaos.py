"""Chaos: a simulated working week of 5,000 agents, every fault the simulator can inject at random,
and the daemon killed with SIGKILL and restarted several times; then the daemon's database is
judged against the simulator's ground truth (bench/chaos_check.py).

    .venv/bin/python -m bench.chaos [--agents 5000] [--days 5] [--factor 300] [--kills 6]
                                    [--fault-every 20] [--seed 1] [--quick] [--json PATH]

The week starts on a Monday at 00:00 in the org's zone and runs `--factor` times faster than
real time (a five-day week in 24 minutes at the default); the behaviour model works the agents'
shifts. The daemon runs in its own process on the simulator's clock (`python -m bench.daemon`),
so it can be killed, from a copy of the code taken at the start, so every restart runs the same
code. Intervals that real time bounds are scaled with the factor, on both sides: the daemon's
socket open timeout, silence before a ping and wait for a pong, and the simulator's grace between
socket_closing and the close (a minute would be 0.1 s of real time at x600), so that a busy event
loop is not mistaken for a dead socket or a slow rollover, faults of the benchmark's own making.

Faults come on average every `--fault-every` simulated minutes, drawn from every fault of the
simulator's admin API (socket drops, silence, delayed, duplicated, reordered and malformed
frames, 429 storms, 5xx bursts, revoked and expired tokens, socket_closing, expired channels) and
from roster changes (hires, deactivations); the frame faults last a random while and are then
switched off. The simulator records every fault in its fault log; the report lists them all, and
the kills. At the end every fault is switched off, the agents stop working, and the daemon is
given time to converge before it is stopped with SIGTERM. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.chaos_check import (
    State,
    TrueChange,
    Window,
    current_state,
    final_mismatches,
    read_database,
    verify,
)
from bench.dbfill import CACHE
from bench.harness import (
    DAEMON_CLIENT,
    Check,
    ClockAnchor,
    DaemonProcess,
    add_quiet_option,
    daemon_env,
    dump_json,
    free_port,
    quiet,
    report_checks,
    set_quiet,
    sim_settings,
    snapshot_code,
)
from monitor.clock import ScaledClock
from monitor.core.model import Kind
from monitor.sim.frames import iso_ms
from monitor.sim.org import Org, SimAgent
from monitor.sim.server import Simulator

DAY_MS = 86_400_000
MINUTE_MS = 60_000
# Real seconds that a lost frame may predate the gap it fell in (frames written just before a
# socket died, events received but not committed when the daemon was killed), and that the
# daemon is given to converge at the end.
SLACK_REAL_S = 2.0


def monday_ms(weeks_back: int = 1) -> int:
    """00:00 UTC on the Monday `weeks_back` weeks before this week's."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=today.weekday() + 7 * weeks_back)).timestamp() * 1000)


def truth_state(org: Org) -> State:
    state: State = {}
    for agent in org.agents.values():
        if agent.state == "active":
            presence = org.presence_of(agent).value
            state[agent.id, "presence"] = (presence, agent.presence_definition_id)
            state[agent.id, "routing"] = (agent.routing_status.value, "")
    return state


def initial_changes(org: Org, agents: list[SimAgent]) -> list[TrueChange]:
    """The agents' states as they are now, as changes at the times they began."""
    out = []
    for agent in agents:
        out.append(
            TrueChange(
                agent.id,
                "presence",
                org.presence_of(agent).value,
                agent.presence_definition_id,
                agent.presence_modified_ms,
                initial=True,
            )
        )
        out.append(
            TrueChange(
                agent.id,
                "routing",
                agent.routing_status.value,
                "",
                agent.routing_start_ms,
                initial=True,
            )
        )
    return out


# --- faults ------------------------------------------------------------------------------------

_FRAME_FAULTS = ("stop_heartbeats", "delay_frames", "duplicate_frames", "reorder_frames")


@dataclass
class Injector:
    """Draws faults at random and switches the lasting ones off again."""

    sim: Simulator
    rng: random.Random
    mean_gap_ms: int
    joined: dict[str, int] = field(default_factory=dict)
    left: dict[str, int] = field(default_factory=dict)
    initial: list[TrueChange] = field(default_factory=list)
    ends: dict[str, int] = field(default_factory=dict)  # lasting fault -> when it is switched off
    next_ms: int = 0

    def schedule(self, now_ms: int) -> None:
        self.next_ms = now_ms + int(self.rng.expovariate(1 / self.mean_gap_ms))

    def _channels(self) -> list[str]:
        channels = self.sim.notifications.channels.of_client(DAEMON_CLIENT.client_id)
        return [c.id for c in channels if c.connected]

    def _lasting(self, name: str, now_ms: int, switch_on: Callable[[], None]) -> None:
        if name in self.ends:
            return  # already on
        switch_on()
        self.ends[name] = now_ms + self.rng.randint(5, 60) * MINUTE_MS

    def inject(self, now_ms: int) -> None:
        sim, rng = self.sim, self.rng
        faults: dict[str, Callable[[], object]] = {
            "drop_socket": self._drop_socket,
            "drop_all_sockets": sim.drop_all_sockets,
            "stop_heartbeats": lambda: self._lasting(
                "stop_heartbeats", now_ms, lambda: sim.stop_heartbeats(True)
            ),
            "delay_frames": lambda: self._lasting(
                "delay_frames", now_ms, lambda: sim.delay_frames(rng.uniform(1, 60))
            ),
            "duplicate_frames": lambda: self._lasting(
                "duplicate_frames", now_ms, lambda: sim.duplicate_frames(rng.uniform(0.01, 0.3))
            ),
            "reorder_frames": lambda: self._lasting(
                "reorder_frames", now_ms, lambda: sim.reorder_frames(rng.uniform(0.01, 0.3))
            ),
            "malformed_frames": lambda: self._lasting(
                "malformed_frames", now_ms, lambda: sim.malformed_frames(rng.uniform(0.01, 0.2))
            ),
            "rate_limit_storm": lambda: sim.rate_limit_storm(
                rng.uniform(30, 600), rng.randint(1, 60)
            ),
            "server_errors": lambda: sim.server_errors(
                rng.randint(1, 30), rng.choice((500, 502, 503, 504))
            ),
            "revoke_tokens": lambda: sim.revoke_tokens(DAEMON_CLIENT.client_id),
            "expire_token": self._expire_token,
            "socket_closing": lambda: sim.socket_closing(
                rng.choice(self._channels()) if self._channels() and rng.random() < 0.7 else None
            ),
            "expire_channels": lambda: sim.expire_channels(
                rng.choice(self._channels()) if self._channels() and rng.random() < 0.8 else None
            ),
            "hire": lambda: self._hire(now_ms),
            "deactivate": lambda: self._deactivate(now_ms),
        }
        weights = {"hire": 0.5, "deactivate": 0.5}
        names = list(faults)
        name = rng.choices(names, weights=[weights.get(n, 1.0) for n in names])[0]
        faults[name]()
        self.schedule(now_ms)

    def _drop_socket(self) -> None:
        channels = self._channels()
        if channels:
            self.sim.drop_socket(self.rng.choice(channels))

    def _expire_token(self) -> None:
        live = [t for t in self.sim.tokens.live() if t.client_id == DAEMON_CLIENT.client_id]
        if live:
            self.sim.expire_token(self.rng.choice(live).value)

    def _hire(self, now_ms: int) -> None:
        org = self.sim.org
        ids = self.sim.hire(self.rng.randint(1, 5))
        for agent_id in ids:
            self.joined[agent_id] = now_ms
        self.initial += initial_changes(org, [org.agents[a] for a in ids])

    def _deactivate(self, now_ms: int) -> None:
        active = [
            a.id
            for a in self.sim.org.agents.values()
            if a.state == "active" and a.id not in self.left
        ]
        if len(active) > 1:
            agent_id = self.rng.choice(active)
            self.left[agent_id] = now_ms
            self.sim.deactivate(agent_id)

    def next_end(self) -> int | None:
        return min(self.ends.values(), default=None)

    def end_due(self, now_ms: int) -> None:
        for name, at in list(self.ends.items()):
            if at <= now_ms:
                self._switch_off(name)

    def _switch_off(self, name: str) -> None:
        del self.ends[name]
        sim = self.sim
        {
            "stop_heartbeats": lambda: sim.stop_heartbeats(False),
            "delay_frames": lambda: sim.delay_frames(0),
            "duplicate_frames": lambda: sim.duplicate_frames(0),
            "reorder_frames": lambda: sim.reorder_frames(0),
            "malformed_frames": lambda: sim.malformed_frames(0),
        }[name]()

    def switch_all_off(self) -> None:
        for name in list(self.ends):
            self._switch_off(name)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Run:
    anchor: ClockAnchor
    clock: ScaledClock
    work: Path
    env: dict[str, str]
    windows: list[Window] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0

    @property
    def db(self) -> Path:
        return Path(self.env["MONITOR_STORAGE__PATH"].strip('"'))

    async def start(self, reason: str, down_from_ms: int) -> DaemonProcess:
        """Start the daemon; the agents are unwatched from `down_from_ms` until it is healthy."""
        daemon = await DaemonProcess.spawn(self.work, self.env, anchor=self.anchor)
        self.restarts += 1
        await daemon.healthy(within=600)
        self.windows.append(Window(down_from_ms, self.clock.now_ms(), None, reason))
        return daemon

    def newest_event_ms(self) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            value = conn.execute("SELECT max(event_ms) FROM transitions").fetchone()[0]
        finally:
            conn.close()
        return int(value) if value is not None else 0

    async def kill(self, daemon: DaemonProcess, rng: random.Random) -> DaemonProcess:
        # Whatever arrived after the newest committed event may die with the process.
        newest = self.newest_event_ms()
        killed_ms = self.clock.now_ms()
        daemon.kill()
        await daemon.wait()
        down_s = rng.uniform(60, 1800)
        await self.clock.sleep(down_s)
        daemon = await self.start("killed: SIGKILL, then restarted", min(newest, killed_ms))
        self.kills.append(
            {
                "at": iso_ms(killed_ms),
                "at_ms": killed_ms,
                "down_s": round(down_s),
                "healthy": iso_ms(self.clock.now_ms()),
            }
        )
        return daemon

    async def crashed(self, daemon: DaemonProcess, since_ms: int) -> DaemonProcess:
        code = await daemon.wait()
        self.crashes.append({"at": iso_ms(self.clock.now_ms()), "exit_code": code})
        print(f"  the daemon exited on its own (exit code {code}); see {daemon.log}", flush=True)
        return await self.start("crashed: restarted", since_ms)


async def chaos(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    factor = args.factor
    start_ms = monday_ms()
    end_ms = start_ms + int(args.days * DAY_MS)
    anchor = ClockAnchor.now(start_ms, factor)
    wall0 = time.time()  # the same moment on the wall clock, to find the daemon's log lines
    clock = anchor.clock()
    rng = random.Random(args.seed)
    settings = sim_settings(
        args.agents,
        start_ms=start_ms,
        time_factor=factor,
        seed=args.seed,
        requests_per_minute=300,
        # "About a minute" to roll over after socket_closing would be 0.1 s of real time at
        # x600; a second of real time leaves the daemon the room it has against Genesys.
        socket_closing_grace_s=max(60.0, SLACK_REAL_S / 2 * factor),
    )
    await quiet()
    async with Simulator.start(settings, clock=clock, behaviour=True) as sim:
        org = sim.org
        initial = initial_changes(org, list(org.agents.values()))
        env = daemon_env(
            sim.api_url,
            work / "chaos.db",
            free_port(),
            code=snapshot_code(work),
            GENESYS__USERS_PAGE_SIZE="500",
            CHANNELS__OPEN_TIMEOUT_S=str(max(10.0, 5 * factor)),
            CHANNELS__PING_AFTER_S=str(max(45.0, 2 * factor)),
            CHANNELS__PONG_TIMEOUT_S=str(max(15.0, factor)),
            ROSTER__REFRESH_S="3600",
        )
        run = Run(anchor, clock, work, env)
        injector = Injector(sim, rng, int(args.fault_every * MINUTE_MS))
        kill_times = sorted(
            rng.uniform(start_ms + 0.05 * (end_ms - start_ms), end_ms - 0.05 * (end_ms - start_ms))
            for _ in range(args.kills)
        )
        daemon = await run.start("not started yet", start_ms - DAY_MS)
        started = time.perf_counter()
        injector.schedule(clock.now_ms())
        report_every = 6 * 60 * MINUTE_MS
        next_report = start_ms + report_every
        checked_ms = clock.now_ms()
        while True:
            now = clock.now_ms()
            if now >= end_ms:
                break
            if not daemon.running:
                daemon = await run.crashed(daemon, checked_ms)
                continue
            checked_ms = now
            injector.end_due(now)
            if kill_times and kill_times[0] <= now:
                kill_times.pop(0)
                daemon = await run.kill(daemon, rng)
                continue
            if injector.next_ms <= now:
                injector.inject(now)
            if now >= next_report:
                next_report += report_every
                print(
                    f"  [{iso_ms(now)[:16]}] {len(org.truth):,} changes, "
                    f"{len(sim.faults.log)} faults, {len(run.kills)} kills, "
                    f"daemon {daemon.rss_kib() / 1024:.0f} MiB, "
                    f"{time.perf_counter() - started:.0f} s",
                    flush=True,
                )
            due = [end_ms, injector.next_ms, next_report, now + int(factor * 1000)]
            due += [int(t) for t in kill_times[:1]]
            if injector.next_end() is not None:
                due.append(injector.next_end() or 0)
            await clock.sleep(max(0.0, (min(due) - clock.now_ms()) / 1000))

        # The end of the week: every fault off, the agents stop, the daemon catches up.
        injector.switch_all_off()
        await sim.stop_behaviour()
        truth_now = truth_state(org)
        converged = await converge(run, daemon, truth_now, args.settle)
        code = await daemon.stop()
        if code != 0:
            run.crashes.append({"at": iso_ms(clock.now_ms()), "exit_code": code, "on": "SIGTERM"})
        faults = [
            {"at": iso_ms(r.at_ms), "at_ms": r.at_ms, "name": r.name, "args": r.args}
            for r in sim.faults.log
        ]
        delivered = sim.notifications.delivered
        changes = [
            TrueChange(
                c.agent_id,
                c.kind.value,
                c.value,
                (c.definition_id or "") if c.kind is Kind.PRESENCE else "",
                c.event_ms,
                delivered=c.seq in delivered,
            )
            for c in org.truth
        ]
        joined, left = dict(injector.joined), dict(injector.left)
        initial += injector.initial
        injected = dict(sim.notifications.injected)
    elapsed = time.perf_counter() - started

    rows, current, gaps = read_database(run.db)
    findings = verify(
        [*initial, *changes],
        rows,
        [*gaps, *run.windows],
        truth_now,
        current,
        joined_ms=joined,
        left_ms=left,
        slack_ms=int(SLACK_REAL_S * factor * 1000),
    )
    return {
        "agents": args.agents,
        "days": args.days,
        "factor": factor,
        "seed": args.seed,
        "real_seconds": elapsed,
        "faults": faults,
        "fault_counts": dict(Counter(f["name"] for f in faults)),
        "frame_faults_injected": injected,
        "kills": run.kills,
        "crashes": run.crashes,
        "converged_s": converged,
        "findings": findings.as_dict(),
        "ok": findings.ok,
        "log_errors": count_errors(run.work / "daemon.log"),
        "log_context": log_context(run.work / "daemon.log", findings, start_ms, factor, wall0),
        "wall0": wall0,
        "start_ms": start_ms,
    }


async def converge(run: Run, daemon: DaemonProcess, truth: State, within: float) -> float | None:
    """Seconds until the committed state equals the truth; None if it never does."""
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        if not daemon.running:
            return None
        if not final_mismatches(truth, current_state(run.db)):
            return time.perf_counter() - started
        await asyncio.sleep(0.5)
    return None


def log_context(
    log: Path, findings: Any, start_ms: int, factor: float, wall0: float
) -> dict[str, list[str]]:
    """For each example of a failure, the daemon's log events within 100 ms (real) of it."""
    if not log.exists():
        return {}
    events: list[tuple[float, str]] = []
    for line in log.open():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            entry = json.loads(line)
            moment = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
            detail = {k: v for k, v in entry.items() if k not in ("timestamp", "logger", "level")}
            events.append((moment.timestamp(), json.dumps(detail)[:300]))
    out: dict[str, list[str]] = {}
    for what, examples in findings.samples.items():
        for at_ms, _ in examples:
            wall = wall0 + (at_ms - start_ms) / 1000 / factor
            out[f"{what} {iso_ms(at_ms)}"] = [
                f"{t - wall:+.3f}s {text}" for t, text in events if abs(t - wall) <= 0.1
            ]
    return out


def count_errors(log: Path) -> int:
    """Lines the daemon logged at error level (JSON logs)."""
    if not log.exists():
        return 0
    return sum(1 for line in log.open() if '"level": "error"' in line or '"level":"error"' in line)


def checks(r: dict[str, Any]) -> list[Check]:
    f = r["findings"]
    return [
        Check(
            "final state equals the truth",
            f"{f['final_mismatches']} mismatches of {f['final_checked']:,} (converged "
            + (f"in {r['converged_s']:.1f} s)" if r["converged_s"] is not None else "never)"),
            "0",
            f["final_mismatches"] == 0,
        ),
        Check("duplicates", f"{f['duplicates']}", "0", f["duplicates"] == 0),
        Check("rows matching no true change", f"{f['invented']}", "0", f["invented"] == 0),
        Check(
            "changes lost outside any gap",
            f"{f['lost']} (and {f['lost_in_windows']:,} inside gaps, which no client could see)",
            "0",
            f["lost"] == 0,
        ),
        Check(
            "every gap closed by a snapshot",
            f"{f['unrecovered']} unrecovered, {f['recovered']:,} recovered, "
            f"{f['superseded']:,} superseded by a newer live change",
            "0 unrecovered",
            f["unrecovered"] == 0,
        ),
        Check(
            "crashes",
            f"{len(r['crashes'])} (daemon error lines logged: {r['log_errors']})",
            "0",
            not r["crashes"],
        ),
    ]


def print_report(r: dict[str, Any]) -> None:
    f = r["findings"]
    print(
        f"\n{r['agents']:,} agents, {r['days']} simulated days at x{r['factor']:g} "
        f"({r['real_seconds'] / 60:.1f} min real), seed {r['seed']}"
    )
    print(
        f"ground truth: {f['truth_changes']:,} changes; database: {f['rows']:,} rows "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(f['by_source'].items()))}; "
        f"{f['late_rows']:,} late)"
    )
    print(f"unwatched intervals: {', '.join(f'{k} {v}' for k, v in sorted(f['windows'].items()))}")
    by_window = Counter(f["unrecovered_by_window"]).most_common()
    if by_window:
        print(f"unrecovered changes by unwatched interval ({len(by_window)} intervals), largest:")
        for key, count in by_window[:8]:
            start_ms, reason = key.split(" ", 1)
            print(f"  {iso_ms(int(start_ms))} {reason}: {count}")
    print(f"\nfaults injected ({len(r['faults'])}):")
    for name, count in sorted(r["fault_counts"].items()):
        print(f"  {name:<18} {count}")
    print(f"frames altered by the frame faults: {r['frame_faults_injected']}")
    print(f"daemon killed with SIGKILL ({len(r['kills'])}):")
    for kill in r["kills"]:
        print(f"  {kill['at']}, down {kill['down_s']} s simulated, healthy again {kill['healthy']}")
    print("every fault, in order (simulated time):")
    for fault in r["faults"]:
        args = ", ".join(f"{k}={v}" for k, v in fault["args"].items())
        print(f"  {fault['at']}  {fault['name']}({args})")
    for what, examples in f["samples"].items():
        print(f"examples of {what}, with the faults and kills of the 20 simulated minutes before:")
        for at_ms, text in examples:
            print(f"  {iso_ms(at_ms) if at_ms else ''} {text}")
            for fault in r["faults"]:
                if at_ms - 20 * MINUTE_MS <= fault["at_ms"] <= at_ms + MINUTE_MS:
                    print(f"      fault {fault['at']} {fault['name']} {fault['args']}")
            for kill in r["kills"]:
                if at_ms - 20 * MINUTE_MS <= kill["at_ms"] <= at_ms + MINUTE_MS:
                    print(f"      killed {kill['at']}")
            for line in r["log_context"].get(f"{what} {iso_ms(at_ms)}", [])[:12]:
                print(f"      daemon log {line}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5_000)
    parser.add_argument("--days", type=float, default=5.0, help="simulated days from Monday")
    parser.add_argument("--factor", type=float, default=300.0, help="simulated seconds a second")
    parser.add_argument("--kills", type=int, default=6, help="SIGKILLs of the daemon")
    parser.add_argument("--fault-every", type=float, default=20.0, help="simulated minutes")
    parser.add_argument("--settle", type=float, default=300.0, help="real seconds to converge")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1,000 agents, one day, x600")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the database and the log")
    add_quiet_option(parser)
    args = parser.parse_args()
    set_quiet(args.wait_quiet)
    if args.quick:
        args.agents, args.days, args.factor, args.kills = 1_000, 1.0, 600.0, 2
    CACHE.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix="chaos-"))
    result = asyncio.run(chaos(args, work))
    print_report(result)
    found = checks(result)
    ok = report_checks(found)
    dump_json(args.json, result, found)
    if ok and not args.keep:
        shutil.rmtree(work)
    else:
        print(f"the database and the daemon's log are kept in {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
