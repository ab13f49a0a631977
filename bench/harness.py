"""What the benchmarks share: the simulator's settings, the daemon in a process of its own, a
clock both can share, process statistics from /proc, and reading /metrics and the database.

The daemon runs as `python -m monitor run` (the real command) when it can use the real clock,
and as `python -m bench.daemon` when it must share the simulator's accelerated clock: a
`ClockAnchor` (start, factor, and the `time.monotonic()` reading at which the simulated clock
started) rebuilds the same simulated time in any process on this machine, since
CLOCK_MONOTONIC is system-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import httpx

from monitor.clock import ScaledClock
from monitor.sim.server import Simulator
from monitor.sim.settings import OAuthClient, SimSettings

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CHANNELS = "/api/v2/notifications/channels"
# The daemon's OAuth client, and a second one for the benchmarks' own consumers, so that their
# channels never count against the daemon's twenty.
DAEMON_CLIENT = OAuthClient("monitor-bench", "monitor-bench-secret")
BENCH_CLIENT = OAuthClient("bench-consumer", "bench-consumer-secret")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def sim_settings(agents: int, **overrides: Any) -> SimSettings:
    """An org of `agents` with both OAuth clients and no rate limit (answers "instantly")."""
    base = SimSettings(agents=agents, requests_per_minute=0, clients=(DAEMON_CLIENT, BENCH_CLIENT))
    return replace(base, **overrides)


# --- clocks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockAnchor:
    """Simulated time that several processes can rebuild: `start_ms` at `origin` (a
    time.monotonic() reading), running `factor` times faster than real time."""

    start_ms: int
    factor: float
    origin: float

    @classmethod
    def now(cls, start_ms: int, factor: float) -> ClockAnchor:
        return cls(start_ms, factor, time.monotonic())

    def clock(self) -> ScaledClock:
        # ScaledClock counts from its own construction; starting it where the shared clock is
        # now puts both on the same time line (within the microsecond between the two readings).
        elapsed = time.monotonic() - self.origin
        return ScaledClock(self.start_ms + round(elapsed * self.factor * 1000), self.factor)

    def args(self) -> list[str]:
        return [
            "--clock-start-ms",
            str(self.start_ms),
            "--clock-factor",
            repr(self.factor),
            "--clock-origin",
            repr(self.origin),
        ]


# --- processes ---------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes that `pid` started and that are still running (not their own children)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _status_kib(pid: int, *fields: str) -> int:
    """The sum of some of /proc/PID/status's memory fields (kB)."""
    total, found = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            total += int(value.split()[0])
            found += 1
    if found < len(fields):
        raise RuntimeError(f"no {', '.join(fields)} for process {pid}")
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS) and of the processes it started (the daemon's batch
    writer), from /proc/PID/status. A child's pages of files (the interpreter, its libraries)
    are the parent's pages of the same files, which the parent's figure counts already: of a
    child only its own memory counts, anonymous and shared (RssAnon, RssShmem)."""
    total = _status_kib(pid, "VmRSS")
    for child in children(pid):
        with contextlib.suppress(OSError, RuntimeError):  # it may end meanwhile
            total += _status_kib(child, "RssAnon", "RssShmem")
    return total


def _stat(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User plus system CPU time of a process so far, from /proc/PID/stat; `with_children` adds
    that of the processes it started, running or ended (the daemon's batch writer)."""
    fields = _stat(pid)
    # utime and stime, then cutime and cstime: the children it has waited for.
    ticks = sum(int(value) for value in fields[11 : 15 if with_children else 13])
    if with_children:
        for child in children(pid):
            with contextlib.suppress(OSError):
                ticks += sum(int(value) for value in _stat(child)[11:13])
    return ticks / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every core), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _CLK_TCK


class CpuMeter:
    """CPU used over an interval by given processes and by the rest of the machine, so a figure
    measured on a shared machine can be judged (other work steals the same two cores)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._wall = time.perf_counter()
        self._machine = machine_busy_seconds()
        self._cpu = {name: self._seconds(name) for name in self.pids}

    def _seconds(self, name: str) -> float:
        # The daemon's figure includes its batch writer's; the benchmark's own process (the
        # simulator) is the daemon's parent, so its children are not its own.
        return cpu_seconds(self.pids[name], with_children=name == "daemon")

    def read(self) -> dict[str, float]:
        """Seconds of CPU per process, `other` for the rest of the machine, and `wall`."""
        wall = time.perf_counter() - self._wall
        used = {name: self._seconds(name) - self._cpu[name] for name in self.pids}
        other = machine_busy_seconds() - self._machine - sum(used.values())
        return {**used, "other": max(0.0, other), "wall": wall}


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of every process it started (running or reaped)."""
    me = os.getpid()
    total = sum(os.times()[:4])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == me:  # a child of this process
                total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total


async def wait_quiet(
    most_s: float = 300.0, idle_share: float = 0.15, window_s: float = 2.0
) -> float:
    """Wait (up to `most_s`) until the rest of the machine has used less than `idle_share` of a
    core for `window_s`; returns that share. Other work on a two-core machine takes the cores the
    figures are about, so measuring waits for a quiet moment and says how quiet it was."""
    deadline = time.perf_counter() + most_s
    told = False
    while True:
        machine, own = machine_busy_seconds(), own_cpu_seconds()
        await asyncio.sleep(window_s)
        other = (machine_busy_seconds() - machine - (own_cpu_seconds() - own)) / window_s
        if other < idle_share or time.perf_counter() > deadline:
            if told:
                print(f"  (other work now uses {other:.2f} of a core)", flush=True)
            return max(0.0, other)
        if not told:
            print(
                f"  waiting for the machine to be quiet: other work uses {other:.2f} of a core",
                flush=True,
            )
            told = True


QUIET = {"most_s": 300.0}


def add_quiet_option(parser: Any) -> None:
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        metavar="S",
        help="before each measurement, wait up to S seconds for other work on the machine to "
        "stop (0: do not wait; default 300)",
    )


def set_quiet(seconds: float) -> None:
    QUIET["most_s"] = seconds


async def quiet() -> float:
    """wait_quiet() with the time allowed by --wait-quiet; the other work's share of a core."""
    if QUIET["most_s"] <= 0:
        return float("nan")
    return await wait_quiet(QUIET["most_s"])


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def snapshot_code(workdir: Path) -> Path:
    """A copy of the monitor and bench packages, for daemons that are restarted during a long
    run: every restart then runs the same code, whatever is edited in the tree meanwhile."""
    target = workdir / "code"
    ignore = shutil.ignore_patterns("__pycache__", ".cache")
    for package in ("monitor", "bench"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore, dirs_exist_ok=True)
    return target


def toml_string(text: str) -> str:
    return json.dumps(text)


def daemon_env(
    api_url: str,
    db: Path,
    port: int,
    client: OAuthClient = DAEMON_CLIENT,
    *,
    code: Path = ROOT,
    **settings: str,
) -> dict[str, str]:
    """The environment of a daemon pointed at the simulator; `settings` are MONITOR_X__Y
    overrides (TOML values, e.g. GENESYS__USERS_PAGE_SIZE="500"); `code` is where the monitor
    package is imported from (the tree, or a snapshot_code() copy)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(
        {
            "PYTHONPATH": str(code),
            "MONITOR_GENESYS__API_URL": toml_string(api_url),
            "MONITOR_STORAGE__PATH": toml_string(str(db)),
            "MONITOR_HTTP__LISTEN": toml_string(f"127.0.0.1:{port}"),
            "MONITOR_LOG__FORMAT": toml_string("json"),
            "GENESYS_CLIENT_ID": client.client_id,
            "GENESYS_CLIENT_SECRET": client.client_secret,
        }
    )
    env.update({f"MONITOR_{key}": value for key, value in settings.items()})
    return env


def _prepare(workdir: Path) -> tuple[Path, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.toml"
    if not config.exists():
        config.write_text("# Everything comes from MONITOR_* environment variables.\n")
    return config, workdir / "daemon.log"


@contextlib.contextmanager
def _log_file(log: Path, command: Sequence[str]) -> Iterator[TextIO]:
    with log.open("a") as out:
        out.write(f"--- {' '.join(command)}\n")
        out.flush()
        yield out


class DaemonProcess:
    """The daemon in a process of its own, its output in a log file."""

    def __init__(
        self, process: asyncio.subprocess.Process, port: int, log: Path, spawned: float
    ) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.spawned = spawned
        self.http = httpx.AsyncClient(base_url=self.url, timeout=60)

    @classmethod
    async def spawn(
        cls,
        workdir: Path,
        env: Mapping[str, str],
        *,
        anchor: ClockAnchor | None = None,
        profile: Path | None = None,
    ) -> DaemonProcess:
        """Start the daemon; under cProfile (written at a clean exit) when `profile` is a path."""
        config, log = _prepare(workdir)
        port = int(env["MONITOR_HTTP__LISTEN"].strip('"').rpartition(":")[2])
        if anchor is None:
            command = ["-m", "monitor", "run", "--config", str(config)]
        else:
            command = ["-m", "bench.daemon", "--config", str(config), *anchor.args()]
        if profile is not None:
            command = ["-m", "cProfile", "-o", str(profile), *command]
        command = [PYTHON, *command]
        with _log_file(log, command) as out:
            spawned = time.perf_counter()
            # From the code's folder, so that `-m` finds the packages where PYTHONPATH says.
            process = await asyncio.create_subprocess_exec(
                *command,
                env=dict(env),
                cwd=env.get("PYTHONPATH", str(ROOT)),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        return cls(process, port, log, spawned)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def healthy(self, within: float = 120.0, interval: float = 0.01) -> float:
        """Seconds from spawn until /healthz answers 200; RuntimeError if the process ends or
        the deadline passes first."""
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            if not self.running:
                raise RuntimeError(f"daemon exited with {self.process.returncode}; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/healthz")).status_code == 200:
                    return time.perf_counter() - self.spawned
            await asyncio.sleep(interval)
        raise RuntimeError(f"daemon not healthy within {within} s; see {self.log}")

    async def metrics(self) -> str:
        response = await self.http.get("/metrics")
        response.raise_for_status()
        return response.text

    async def settled(self, within: float = 120.0) -> None:
        """Wait until the daemon's writer queue is empty."""
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            text = await self.metrics()
            if metric(text, "monitor_writer_queue_depth") == 0:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the daemon's writer did not settle")

    async def idle(self, within: float = 600.0, share: float = 0.1, window: float = 1.0) -> float:
        """Wait until the daemon uses less than `share` of a core over `window` seconds (its
        start-up work, such as warming the report cache, is done); returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < within:
            cpu = self.cpu_seconds()
            await asyncio.sleep(window)
            if (self.cpu_seconds() - cpu) / window < share:
                return time.perf_counter() - started
        raise RuntimeError(f"the daemon stayed busy for {within} s; see {self.log}")

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid, with_children=True)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, within: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL after `within` seconds)."""
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                code = await self.process.wait()
        except TimeoutError:
            self.kill()
            code = await self.process.wait()
        await self.http.aclose()
        return code

    async def wait(self) -> int:
        code = await self.process.wait()
        await self.http.aclose()
        return code


# --- /metrics ----------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of one metric in a text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        yield labels, float(match.group(3))


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        value
        for found, value in samples(text, name)
        if all(found.get(k) == v for k, v in labels.items())
    )


def histogram_between(before: str, after: str, name: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of the observations of histogram `name` made between two
    expositions of it, by bucket."""

    def buckets(text: str) -> dict[float, float]:
        return {float(labels["le"]): value for labels, value in samples(text, name + "_bucket")}

    then, now = buckets(before), buckets(after)
    return sorted((le, count - then.get(le, 0.0)) for le, count in now.items())


def bucket_total(buckets: list[tuple[float, float]]) -> float:
    """How many observations the buckets hold (the +Inf bucket's count)."""
    return buckets[-1][1] if buckets else 0.0


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The upper bound of the bucket that holds quantile `q` (NaN when nothing was observed)."""
    total = bucket_total(buckets)
    if total <= 0:
        return math.nan
    return next(le for le, count in buckets if count >= q * total)


def count_above(buckets: list[tuple[float, float]], bound: float) -> float:
    """How many observations were above `bound`, one of the buckets' bounds."""
    total = bucket_total(buckets)
    return total - next((count for le, count in buckets if le == bound), total)


# --- the database ------------------------------------------------------------------------------


class DbReader:
    """A read-only connection to the daemon's database (WAL: it never blocks the writer)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    def last_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM transitions").fetchone()[0])

    def key_of(self) -> dict[str, int]:
        return {str(i): int(k) for i, k in self.conn.execute("SELECT id, key FROM agents")}

    def close(self) -> None:
        self.conn.close()


# --- the simulator -----------------------------------------------------------------------------


async def subscribe_all(sim: Simulator, client: OAuthClient, agent_ids: Sequence[str]) -> list[str]:
    """Channels of `client` subscribed to every agent (combined topics, 1,000 a channel) over
    the simulator's REST API; returns their connect URIs."""
    token = sim.tokens.issue(client.client_id, client.client_secret)
    if token is None:
        raise RuntimeError(f"the simulator does not know client {client.client_id}")
    uris = []
    async with httpx.AsyncClient(
        base_url=sim.api_url, headers={"Authorization": f"Bearer {token.value}"}, timeout=60
    ) as http:
        for start in range(0, len(agent_ids), sim.settings.max_topics):
            channel = (await http.post(CHANNELS)).json()
            batch = agent_ids[start : start + sim.settings.max_topics]
            body = [{"id": f"v2.users.{a}?presence&routingStatus"} for a in batch]
            response = await http.put(f"{CHANNELS}/{channel['id']}/subscriptions", json=body)
            response.raise_for_status()
            uris.append(str(channel["connectUri"]))
    return uris


def connected(sim: Simulator, client_id: str) -> int:
    return sum(1 for c in sim.notifications.channels.of_client(client_id) if c.connected)


async def until(
    probe: Callable[[], bool], within: float, what: str, interval: float = 0.01
) -> None:
    """Poll `probe` until true; RuntimeError naming `what` after `within` seconds."""
    deadline = time.perf_counter() + within
    while True:
        if probe():
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what} not reached within {within} s")
        await asyncio.sleep(interval)


# --- reporting ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


@dataclass
class Check:
    """One target: what was measured against what was asked."""

    name: str
    measured: str
    target: str
    met: bool


def report_checks(checks: Sequence[Check], out: TextIO = sys.stdout) -> bool:
    """Print the targets met and missed; True when every one is met."""
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        mark = "met   " if c.met else "MISSED"
        print(f"  [{mark}] {c.name:<{width}}  {c.measured}  (target: {c.target})", file=out)
    return all(c.met for c in checks)


def code_version() -> str:
    """The commit the figures were measured on, and whether the tree differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "monitor")
    return f"{commit}{' with uncommitted changes to monitor/' if dirty else ''}"


def dump_json(path: str | None, result: Mapping[str, Any], checks: Sequence[Check]) -> None:
    """Write the figures and the checks as JSON, when asked for (`--json PATH`)."""
    if not path:
        return
    data = {**result, "code": code_version(), "checks": [asdict(c) for c in checks]}
    Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"
