"""The dashboards against real data: the daemon runs against the simulator (agents working a day
at 600x, some stuck, faults injected, a presence change and scheduled runs), a real Prometheus
(Debian's package) scrapes it every second with the alert and recording rules loaded, and every
query of every panel, and every variable, must return data.

Simulated time starts at 08:00 on a past weekday, so the daemon's event timestamps stay behind
Prometheus's wall clock, as they would for a real org."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.daemon import Running, running, sim_settings
from tests.metrics_util import sample
from tests.support import eventually, scaled
from tests.test_grafana_dashboards import (
    DASHBOARD_FILES,
    LABEL_VALUES,
    ROOT,
    Query,
    load,
    metric_names,
    promtool,
    queries,
    recorded_names,
    substitute,
    variables,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "grafana-test-token"
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_OWN = {"up"}

# A dry-run schedule, one naming a presence the org does not have (so it fails: the failures
# column has data), and a rule that fires for every logged-out agent (so the stuck-agent panels
# have rows whatever the behaviour model did).
SCHEDULES = """
schedules = [
  {name = "meal-check", cron = "*/10 * * * *", to = "Offline", select = {presence = ["Meal"]}, dry_run = true},
  {name = "misnamed", cron = "*/15 * * * *", to = "Lunchtime", select = {presence = ["Meal"]}},
]
rules = [{name = "logged_out", presence = ["Offline"], threshold = "1m"}]
"""


def past_weekday_morning() -> int:
    """08:00 UTC on the last weekday before today, in epoch ms."""
    day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return int(day.timestamp() * 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Stack:
    run: Running
    prometheus: str
    metrics_text: str
    http: httpx.AsyncClient

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.run.daemon.web_port}"

    async def api(self, path: str, **params: str | float) -> Any:
        response = await self.http.get(f"{self.prometheus}{path}", params=params)
        body = response.json()
        assert response.status_code == 200, (path, params, body)
        assert body["status"] == "success", (path, params, body)
        return body["data"]


def dashboard_metrics() -> set[str]:
    """Every metric the dashboards' panels and variables read."""
    names: set[str] = set()
    for path in DASHBOARD_FILES:
        dashboard = load(path)
        for query in queries(dashboard):
            names |= metric_names(query.expr)
        for variable in variables(dashboard):
            match = LABEL_VALUES.match(variable.get("definition", ""))
            if match:
                names |= metric_names(match["selector"])
    return names


def exported_names(text: str) -> set[str]:
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def make_everything_happen(run: Running) -> None:
    """Faults, a presence change and scheduled runs, so that the counters behind every panel
    exist: a 429 storm and 5xx errors during a reconnect, socket_closing, duplicated frames."""
    sim, metrics = run.sim, run.daemon.metrics
    sim.duplicate_frames(0.2)
    # 20 simulated minutes: 2 real seconds at x600, time for the reconnect to run into it on a
    # busy machine.
    sim.rate_limit_storm(1200, retry_after=1)
    sim.drop_all_sockets()
    await eventually(lambda: sample(metrics, "monitor_api_rate_limited_total") > 0, message="a 429")
    await sim.clock.sleep((sim.faults.rate_limit_storm_until_ms - sim.clock.now_ms()) / 1000)
    sim.server_errors(2)
    await eventually(
        lambda: sim.faults.server_errors_remaining == 0, within=20, message="5xx answered"
    )
    await eventually(
        lambda: sample(metrics, "monitor_channel_up", client="0", slot="0") == 1,
        within=30,
        message="channel back up",
    )
    sim.socket_closing()
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{run.url}/api/v1/presence",
            json={"to": "Break", "select": {"agents": list(sim.org.agents)[:2]}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 200, response.text
    needed = dashboard_metrics() - recorded_names() - PROMETHEUS_OWN

    async def nothing_missing() -> bool:
        return not needed - exported_names(await run.metrics())

    # A metric that never shows up is reported by test_every_metric_the_dashboards_read_is_exported;
    # waiting here only gives the counters time to appear.
    with contextlib.suppress(AssertionError):
        await eventually(nothing_missing, within=20, interval=0.2, message="every metric")


def prometheus_config(folder: Path, target: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [
            {"job_name": "genesys-monitor", "static_configs": [{"targets": [target]}]}
        ],
    }
    path = folder / "prometheus.yml"
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    return path


@contextlib.asynccontextmanager
async def prometheus(folder: Path, target: str) -> AsyncIterator[str]:
    """A real Prometheus scraping `target` every second; its URL. Stopped with SIGTERM."""
    binary = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if binary is None:
        pytest.fail(
            "prometheus not found: this test runs a real Prometheus server. scripts/system-packages "
            "installs Debian's prometheus package, which provides it."
        )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={prometheus_config(folder, target)}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{url}/-/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, within=30, interval=0.1, message="prometheus ready")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(scaled(20)):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The daemon (per-agent metrics, counts by division and queue) against a busy simulated
    org, scraped by a real Prometheus that has seen several scrapes and rule evaluations."""
    folder = tmp_path_factory.mktemp("grafana")
    settings = sim_settings(
        agents=40,
        seed=3,
        start_ms=past_weekday_morning(),
        time_factor=600,
        stuck_fraction=0.5,
        heartbeat_interval_s=60,
    )
    env = {
        "MONITOR_METRICS__BY": '["division", "queue"]',
        "MONITOR_API_TOKEN": TOKEN,
        "MONITOR_CHANNELS__PING_AFTER_S": "600",
        "MONITOR_CHANNELS__PONG_TIMEOUT_S": "300",
        "MONITOR_STUCK__EVALUATE_EVERY_S": "30",
        "MONITOR_ROSTER__REFRESH_S": "600",
    }
    async with running(folder, settings, behaviour=True, toml=SCHEDULES, env=env) as run:
        await make_everything_happen(run)
        text = await run.metrics()
        target = f"127.0.0.1:{run.daemon.web_port}"
        async with (
            prometheus(folder, target) as url,
            httpx.AsyncClient(timeout=scaled(10)) as http,
        ):
            stack = Stack(run, url, text, http)

            async def scraped_and_evaluated() -> bool:
                scrapes = await stack.api(
                    "/api/v1/query", query='count_over_time(up{job="genesys-monitor"}[1m]) >= 4'
                )
                recorded = await stack.api(
                    "/api/v1/query",
                    query="count_over_time(agent_id:genesys_agent_routing_status:code[1m]) >= 3",
                )
                return bool(scrapes["result"]) and bool(recorded["result"])

            await eventually(scraped_and_evaluated, within=30, interval=0.5, message="scrapes")
            yield stack


async def variable_values(stack: Stack, dashboard: dict[str, Any]) -> dict[str, str]:
    """Each variable resolved the way Grafana does it by default: query variables from their
    label_values() query (which must find values), "All" for multi-value ones."""
    values: dict[str, str] = {}
    for variable in variables(dashboard):
        if variable["type"] == "datasource":
            values[variable["name"]] = "prometheus"
            continue
        match = LABEL_VALUES.match(variable["definition"])
        assert match, variable["definition"]
        selector = substitute(match["selector"], values)
        series = await stack.api("/api/v1/series", **{"match[]": selector})
        found = sorted({s[match["label"]] for s in series if match["label"] in s})
        assert found, f"variable {variable['name']}: {selector} has no {match['label']} values"
        values[variable["name"]] = variable["allValue"] if variable["multi"] else found[0]
    return values


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    samples = [s["value"] for s in result if "value" in s]
    samples += [v for s in result for v in s.get("values", [])]
    return any(math.isfinite(float(value)) for _, value in samples)


async def run_query(stack: Stack, query: Query, values: dict[str, str], now: float) -> str | None:
    """None when the query returns at least one series with a finite value; else why not.
    Range queries cover the last 30 seconds, in which Prometheus has been scraping."""
    expr = substitute(query.expr, values)
    if query.instant:
        data = await stack.api("/api/v1/query", query=expr, time=now)
    else:
        data = await stack.api("/api/v1/query_range", query=expr, start=now - 30, end=now, step=1)
    if not data["result"]:
        return f"{query}\n    no series"
    if not has_finite_value(data["result"]):
        return f"{query}\n    only NaN or Inf values"
    return None


async def test_daemon_metrics_pass_promtool(stack: Stack) -> None:
    """`promtool check metrics` accepts the daemon's /metrics with every feature in use:
    per-agent series, counts by division and queue, stuck agents, actions, schedules, faults."""
    check = await asyncio.create_subprocess_exec(
        promtool(),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await check.communicate(stack.metrics_text.encode())
    assert check.returncode == 0, output.decode()
    assert "genesys_queue_agents{" in stack.metrics_text
    assert 'division="' in stack.metrics_text


async def test_every_metric_the_dashboards_read_is_exported(stack: Stack) -> None:
    """Each metric name in a panel or variable query is in the daemon's /metrics, is a
    recording rule's output, or is Prometheus's own `up`: no query reads a misspelt metric."""
    names = dashboard_metrics()
    assert len(names) > 30
    unknown = names - exported_names(stack.metrics_text) - recorded_names() - PROMETHEUS_OWN
    assert not unknown, f"not exported: {sorted(unknown)}"


async def test_rules_evaluate_without_errors(stack: Stack) -> None:
    """Prometheus loaded every alert and recording rule, and each evaluates cleanly against the
    daemon's real series."""
    data = await stack.api("/api/v1/rules")
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    assert len(rules) >= 15
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
async def test_every_panel_query_returns_data(stack: Stack, path: Path) -> None:
    """Every variable of the dashboard finds values, and every query of every panel, with the
    variables at their defaults, returns at least one series with a real value."""
    dashboard = load(path)
    values = await variable_values(stack, dashboard)
    assert values["instance"] == stack.instance
    now = (await stack.api("/api/v1/query", query="time()"))["result"][0]
    results = await asyncio.gather(*(run_query(stack, q, values, now) for q in queries(dashboard)))
    failures = [failure for failure in results if failure is not None]
    assert len(results) >= 5
    assert not failures, "\n".join(failures)
