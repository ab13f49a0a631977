"""Deployment files, checked without Docker (not available where the tests run): the Dockerfile's
shape and health check, the compose file's services, profiles and wiring, the settings the
containers run with, the Prometheus example config, and the compose simulator profile's two
commands run as plain processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import running
from tests.support import eventually, scaled

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()


# --- a reader for the YAML the compose file uses (no YAML library is installed) ----------------


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith(("[", "{")):
        return json.loads(text)
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _strip_comment(line: str) -> str:
    # A comment starts at " #" outside quotes; the compose file has no '#' inside values.
    return re.sub(r"(^|\s)#.*$", "", line).rstrip()


_MAPPING_ITEM = re.compile(r"^[\w.-]+:(?: |$)")


def parse_yaml(text: str) -> Any:
    """Block mappings and sequences, flow sequences and mappings, plain and quoted scalars;
    refuses what it does not know (anchors, tags, multi-line scalars), so that the compose file
    stays in a subset that is checked for real."""
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in map(_strip_comment, text.splitlines())
        if line.strip()
    ]
    for _, line in lines:
        assert not re.search(r"(^|\s)[&*!]\w|[|>]$", line), f"unsupported YAML: {line}"

    def block(index: int, indent: int) -> tuple[Any, int]:
        if lines[index][1].startswith("- "):
            items: list[Any] = []
            while index < len(lines) and lines[index][0] == indent:
                assert lines[index][1].startswith("- "), lines[index][1]
                item = lines[index][1][2:]
                if _MAPPING_ITEM.match(item):
                    # "- key: value" opens a mapping whose keys line up two columns in.
                    lines[index] = (indent + 2, item)
                    value, index = block(index, indent + 2)
                    items.append(value)
                else:
                    items.append(_scalar(item))
                    index += 1
            return items, index
        mapping: dict[str, Any] = {}
        while index < len(lines) and lines[index][0] == indent:
            key, _, rest = lines[index][1].partition(":")
            assert key, lines[index][1]
            assert key not in mapping, lines[index][1]
            index += 1
            if rest.strip():
                mapping[key] = _scalar(rest)
            elif index < len(lines) and lines[index][0] > indent:
                mapping[key], index = block(index, lines[index][0])
            else:
                mapping[key] = None
        return mapping, index

    result, end = block(0, 0)
    assert end == len(lines), f"unexpected indentation at: {lines[end][1]}"
    return result


COMPOSE_DATA = parse_yaml(COMPOSE)
SERVICES: dict[str, Any] = COMPOSE_DATA["services"]
MONITORS = ("monitor", "monitor-sim")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` and `${VAR}`, from `env`."""

    def one(match: re.Match[str]) -> str:
        name, _, default = match.group(1).partition(":-")
        return env.get(name) or default

    return re.sub(r"\$\{([^}]+)\}", one, value)


def dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?=^\S)", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert block is not None
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1).replace("\\\n", " "))
    return {k: v for k, v in pairs if k != "PATH"}


def exec_form(instruction: str) -> list[str]:
    """The JSON array of the Dockerfile's (last) CMD or HEALTHCHECK ... CMD."""
    lines = DOCKERFILE.replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if line.startswith(f"{instruction} ")][-1:]
    array = line.split("CMD", 1)[1].strip()
    parsed: list[str] = json.loads(array)
    return parsed


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_non_root_with_a_data_volume() -> None:
    """Two stages on a slim Python base, only the built environment copied into the runtime, a
    fixed non-root user, /data as a volume, the metrics port exposed, the config in place."""
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", DOCKERFILE, re.MULTILINE)
    assert len(froms) == 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\b", DOCKERFILE, re.MULTILINE)
    assert froms[0] == ("${PYTHON_IMAGE}", "build")
    assert "COPY --from=build /opt/monitor /opt/monitor" in DOCKERFILE
    (user,) = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"^VOLUME \[\"/data\"\]$", DOCKERFILE, re.MULTILINE)
    assert re.search(r"^EXPOSE 9464$", DOCKERFILE, re.MULTILINE)
    env = dockerfile_env()
    assert env["MONITOR_STORAGE__PATH"].startswith("/data/")
    assert "COPY config.toml /etc/monitor/config.toml" in DOCKERFILE


def test_cmd_and_healthcheck_are_exec_form() -> None:
    """CMD and HEALTHCHECK are JSON arrays (so the monitor is PID 1 and gets SIGTERM), and the
    health check asks /healthz."""
    assert exec_form("CMD") == ["monitor", "run", "--config", "/etc/monitor/config.toml"]
    check = exec_form("HEALTHCHECK")
    assert check[:2] == ["python", "-c"]
    assert "/healthz" in check[2]
    assert re.search(r"^HEALTHCHECK --interval=\S+ --timeout=\S+", DOCKERFILE, re.MULTILINE)


def test_tzdata_ships_with_the_package() -> None:
    """Time zones resolve in a slim image: tzdata is a runtime dependency, pinned."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"tzdata' in dependencies
    assert re.search(r"^tzdata==", (ROOT / "constraints.txt").read_text(), re.MULTILINE)


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    """The build context is an allowlist holding exactly what the Dockerfile copies, so the
    virtual environment, databases and secrets never reach the image."""
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.MULTILINE):
        copied |= set(line.split()[:-1])
    assert copied == allowed
    assert "**/*.db" in patterns


async def test_healthcheck_tells_a_live_monitor_from_a_dead_one(tmp_path: Path) -> None:
    """The HEALTHCHECK command exits 0 while the monitor answers HTTP, and 1 once it is gone."""
    script = exec_form("HEALTHCHECK")[2]

    async def check(port: int) -> int:
        env = {**os.environ, "MONITOR_HTTP__LISTEN": f'"0.0.0.0:{port}"'}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await process.wait()

    async with running(tmp_path) as run:
        port = run.daemon.web_port
        assert await check(port) == 0
    assert await check(port) == 1


# --- the settings the containers run with ---------------------------------------------------------


def container_env(service: str, shell: dict[str, str]) -> dict[str, str]:
    """The monitor's environment in a compose service: the image's ENV, then the service's
    `environment`, interpolated from `shell` as compose would."""
    env = dockerfile_env()
    for key, value in SERVICES[service]["environment"].items():
        env[key] = interpolate(str(value), shell)
    return env


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(ROOT / "config.toml")],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize("service", MONITORS)
def test_container_settings_are_valid(service: str) -> None:
    """config.toml with the image's and the service's environment passes `monitor
    check-config`: listening on every interface with the action endpoint off (or on with a
    token), the database in /data, counts by division and queue."""
    shell = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "secret"}
    result = check_config(container_env(service, shell))
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["http"]["listen"] == "0.0.0.0:9464"
    assert resolved["storage"]["path"] == "/data/monitor.db"
    assert resolved["metrics"]["by"] == ["division", "queue"]
    if service == "monitor-sim":
        assert resolved["genesys"]["api_url"] == "http://sim:8080"
        assert resolved["http"]["actions"] is True
        assert resolved["http"]["token"] == "***"
    else:
        assert resolved["genesys"]["region"] == "us_east_1"
        assert resolved["http"]["actions"] is False


def test_the_action_endpoint_needs_a_token_in_a_container() -> None:
    """Switching the action endpoint on in the real-org service without a token is refused at
    start, naming the token variable; with a token it is accepted."""
    shell = {"GENESYS_CLIENT_ID": "id", "GENESYS_CLIENT_SECRET": "secret"}
    refused = check_config(container_env("monitor", {**shell, "MONITOR_HTTP__ACTIONS": "true"}))
    assert refused.returncode == 2
    assert "MONITOR_API_TOKEN" in refused.stderr
    accepted = check_config(
        container_env(
            "monitor", {**shell, "MONITOR_HTTP__ACTIONS": "true", "MONITOR_API_TOKEN": "t0ken"}
        )
    )
    assert accepted.returncode == 0, accepted.stderr


# --- compose ---------------------------------------------------------------------------------------


def test_compose_reader_refuses_what_it_cannot_read() -> None:
    """The YAML reader used here fails on anchors and block scalars instead of misreading them."""
    assert parse_yaml("a:\n  b: [1, 2]\n  c: 'x'\nd:\n  - e\n  - f: 1\n    g:\n      - h\n") == {
        "a": {"b": [1, 2], "c": "x"},
        "d": ["e", {"f": "1", "g": ["h"]}],
    }
    for text in ("a: &x 1\n", "a: |\n  text\n", "a: 1\n  b: 2\n"):
        with pytest.raises(AssertionError):
            parse_yaml(text)


def test_compose_profiles_run_the_monitor_against_genesys_or_the_simulator() -> None:
    """Profile `genesys` runs the monitor with credentials from the environment; profile `sim`
    runs the simulator and a monitor pointed at it under the same network name; Prometheus and
    Grafana run in both."""
    assert set(SERVICES) == {"monitor", "sim", "monitor-sim", "prometheus", "grafana"}
    assert SERVICES["monitor"]["profiles"] == ["genesys"]
    assert SERVICES["sim"]["profiles"] == SERVICES["monitor-sim"]["profiles"] == ["sim"]
    assert "profiles" not in SERVICES["prometheus"]
    assert "profiles" not in SERVICES["grafana"]
    real = SERVICES["monitor"]["environment"]
    assert real["GENESYS_CLIENT_ID"] == "${GENESYS_CLIENT_ID:-}"
    assert real["GENESYS_CLIENT_SECRET"] == "${GENESYS_CLIENT_SECRET:-}"
    assert "MONITOR_GENESYS__API_URL" not in real
    sim = SERVICES["monitor-sim"]
    assert sim["networks"]["default"]["aliases"] == ["monitor"]
    assert sim["depends_on"]["sim"]["condition"] == "service_healthy"
    command = SERVICES["sim"]["command"]
    assert command[:2] == ["monitor", "sim"]
    port = command[command.index("--port") + 1]
    assert sim["environment"]["MONITOR_GENESYS__API_URL"] == f"http://sim:{port}"
    assert f":{port}/sim/status" in " ".join(SERVICES["sim"]["healthcheck"]["test"])
    for name in MONITORS:
        service = SERVICES[name]
        assert service["build"] == "."
        assert "./config.toml:/etc/monitor/config.toml:ro" in service["volumes"]
        assert any(v.endswith(":/data") for v in service["volumes"])
    data = {next(v for v in SERVICES[n]["volumes"] if v.endswith(":/data")) for n in MONITORS}
    assert len(data) == 2  # simulated agents never land in the real org's database


def test_compose_wires_prometheus_and_grafana() -> None:
    """Prometheus gets the example config and every rule file; Grafana gets the provisioning
    and the dashboards where the provider looks, and Prometheus's URL; named volumes are
    declared; every published port is bound to loopback."""
    prometheus = SERVICES["prometheus"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = SERVICES["grafana"]
    assert grafana["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mount = next(v for v in grafana["volumes"] if v.startswith("./grafana/dashboards:"))
    folder = mount.split(":")[1]
    assert (ROOT / "grafana" / "dashboards" / Path(home).relative_to(folder)).exists()
    declared = set(COMPOSE_DATA["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, volume)
            else:
                assert source in declared, (name, volume)
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_prometheus_example_config_is_valid() -> None:
    """`promtool check config` accepts prometheus/prometheus.yml and finds both rule files; it
    scrapes the compose network's `monitor` under the job name the alerts expect."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: scripts/system-packages installs Debian's prometheus")
    result = subprocess.run(
        [promtool, "check", "config", "prometheus/prometheus.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout
    config = (ROOT / "prometheus" / "prometheus.yml").read_text()
    assert "job_name: genesys-monitor" in config
    assert 'targets: ["monitor:9464"]' in config
    assert 'up{job="genesys-monitor"}' in (ROOT / "prometheus/rules/genesys-agents.yml").read_text()


# --- the simulator profile, as processes ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_simulator_profile_commands_work_together(tmp_path: Path) -> None:
    """The compose simulator profile's two commands, run as processes on loopback: `monitor sim`
    with the service's arguments, and `monitor run` with the image's and the monitor-sim
    service's settings, become healthy and export metrics for the simulated agents."""
    command = list(SERVICES["sim"]["command"])
    sim_port, ws_port, web_port = free_port(), free_port(), free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(sim_port)
    command[command.index("--ws-port") + 1] = str(ws_port)
    env = {
        **container_env("monitor-sim", {}),
        "MONITOR_GENESYS__API_URL": f"http://127.0.0.1:{sim_port}",
        "MONITOR_HTTP__LISTEN": f"127.0.0.1:{web_port}",
        "MONITOR_STORAGE__PATH": str(tmp_path / "monitor.db"),
        "MONITOR_LOG__LEVEL": "warning",
    }
    processes = []
    try:
        sim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        processes.append(sim)
        assert sim.stdout is not None
        async with asyncio.timeout(scaled(30)):
            banner = (await sim.stdout.readline()).decode()
        assert banner.startswith("Genesys Cloud simulator: 300 agents"), banner
        monitor = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *exec_form("CMD")[:2],
            "--config",
            str(ROOT / "config.toml"),
            env={"PATH": os.environ.get("PATH", ""), **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=tmp_path,
        )
        processes.append(monitor)

        async def healthy() -> bool:
            assert monitor.returncode is None, "the monitor exited"
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{web_port}/healthz")).is_success
            except httpx.TransportError:
                return False

        await eventually(healthy, within=60, interval=0.2, message="monitor healthy")
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{web_port}/metrics")).text
        assert "genesys_agents_watched 300" in text
        assert "genesys_queue_agents{" in text
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
                async with asyncio.timeout(scaled(20)):
                    await process.wait()
    assert [p.returncode for p in processes] == [0, 0]  # both stop cleanly on SIGTERM


# --- README ----------------------------------------------------------------------------------------


def test_readme_has_the_deployment_sections() -> None:
    """The README explains deploying with Docker, permissions, sizing, upgrading and backups,
    and still opens with the two set-up commands."""
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^#+ (.+)$", readme, re.MULTILINE)
    for wanted in (
        "Try it",
        "Deploying with Docker",
        "Permissions",
        "Sizing",
        "Upgrading",
        "Backups",
    ):
        assert any(h.startswith(wanted) for h in headings), wanted
    assert "./scripts/demo" in readme
    assert "./scripts/test" in readme
