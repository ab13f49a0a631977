"""The wallboard: its event stream over real HTTP, and the page in a real headless Chromium."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from monitor import wallboard
from monitor.core.model import Kind, Presence, Source, Update
from tests.daemon import BREAK_RULE, Running, running
from tests.support import eventually, scaled

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
)
TOKEN = "wall-token"


# --- server-sent events over plain HTTP -----------------------------------------------------------


class EventReader:
    """Reads server-sent events (name, data) and comments ("comment", text) off a response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self) -> tuple[str, Any]:
        name, data = "message", ""
        async with asyncio.timeout(scaled(10)):
            async for line in self._lines:
                if line.startswith(":"):
                    return "comment", line[1:].strip()
                if line.startswith("retry:"):
                    return "retry", int(line.split(":", 1)[1])
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data += line.split(":", 1)[1].strip()
                elif line == "" and data:
                    return name, json.loads(data)
        raise AssertionError("the stream ended")

    async def until(self, name: str) -> Any:
        while True:
            kind, data = await self.next()
            if kind == name:
                return data


@contextlib.asynccontextmanager
async def stream(run: Running, query: str = "") -> AsyncIterator[EventReader]:
    async with (
        httpx.AsyncClient(timeout=scaled(10)) as http,
        http.stream("GET", f"{run.url}/wallboard/events{query}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)


async def test_events_start_with_a_snapshot_then_follow_transitions(tmp_path: Path) -> None:
    """A client gets a snapshot, then each change, keep-alives when idle; leaving unsubscribes."""
    async with running(tmp_path) as run:
        wallboard.mount(run.daemon, keepalive_s=0.1)
        await run.converged()
        listeners = len(run.daemon.recorder._listeners)
        agent = next(iter(run.sim.org.agents))
        async with stream(run) as events:
            assert await events.next() == ("retry", 2000)
            kind, snapshot = await events.next()
            assert kind == "snapshot"
            assert len(snapshot["agents"]) == 30
            assert len(run.daemon.recorder._listeners) == listeners + 1
            assert await events.until("comment") == "keep-alive"
            run.sim.org.set_system_presence(agent, Presence.MEAL, cause="test")
            change = await events.until("transition")
            assert (change["agent_id"], change["kind"], change["value"]) == (
                agent,
                "presence",
                "MEAL",
            )
            assert change["since_ms"] <= change["now_ms"]
        await eventually(
            lambda: len(run.daemon.recorder._listeners) == listeners,
            message="listener removed after the client left",
        )


async def test_a_client_that_falls_behind_gets_a_fresh_snapshot(tmp_path: Path) -> None:
    """More transitions than a client's queue holds: the backlog is replaced by one snapshot."""
    async with running(tmp_path) as run:
        wallboard.mount(run.daemon, backlog=2)
        await run.converged()
        agents = list(run.sim.org.agents)[:10]
        async with stream(run) as events:
            await events.until("snapshot")
            now = run.daemon.clock.now_ms()
            # One call records all ten without yielding: the client's queue overflows.
            made = await run.daemon.recorder.record(
                [Update(a, Kind.PRESENCE, "TRAINING", now + 1) for a in agents],
                Source.SNAPSHOT,
                now + 2,
            )
            assert made == 10
            kind, data = await events.next()
            assert kind == "snapshot"
            shown = {a["id"]: a["presence"] for a in data["agents"]}
            assert {shown[a] for a in agents} == {"TRAINING"}


async def test_page_files_state_and_filters(tmp_path: Path) -> None:
    """The page and its files come from the package; state is filtered by the URL's division."""
    async with running(tmp_path) as run:
        await run.converged()
        async with httpx.AsyncClient(base_url=run.url) as http:
            page = await http.get("/")
            assert page.headers["content-type"].startswith("text/html")
            assert 'src="wallboard/wallboard.js"' in page.text
            for name, kind in (("wallboard.js", "text/javascript"), ("wallboard.css", "text/css")):
                served = await http.get(f"/wallboard/{name}")
                assert served.status_code == 200
                assert served.headers["content-type"].startswith(kind)
                assert served.content == wallboard.asset(name)
            assert (await http.get("/wallboard/secrets.txt")).status_code == 404
            about = await http.get("/about")
            assert 'href="metrics"' in about.text
            state = (await http.get("/wallboard/state")).json()
            assert len(state["agents"]) == 30
            division = state["divisions"][0]
            chosen = (await http.get("/wallboard/state", params={"division": division})).json()
            expected = {a.id for a in run.daemon.roster if a.division_name == division}
            assert {a["id"] for a in chosen["agents"]} == expected
            assert 0 < len(expected) < 30


async def test_wallboard_data_needs_the_token_when_one_is_set(tmp_path: Path) -> None:
    """With a token, state and events need it (header or ?token=); the page itself does not."""
    async with running(tmp_path, MONITOR_API_TOKEN=TOKEN) as run:
        async with httpx.AsyncClient(base_url=run.url) as http:
            assert (await http.get("/")).status_code == 200
            assert (await http.get("/wallboard/state")).status_code == 401
            assert (await http.get("/wallboard/events")).status_code == 401
            wrong = await http.get("/wallboard/state", params={"token": "nope"})
            assert wrong.status_code == 403
            assert (await http.get("/wallboard/state", params={"token": TOKEN})).status_code == 200
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            assert (await http.get("/wallboard/state", headers=bearer)).status_code == 200
        async with stream(run, f"?token={TOKEN}") as events:
            assert (await events.until("snapshot"))["agents"]


# --- the page in a real browser --------------------------------------------------------------------


class Page:
    """One browser tab, driven over the Chrome DevTools Protocol."""

    def __init__(self, browser: Browser, session: str) -> None:
        self._browser = browser
        self._session = session

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.call(method, session=self._session, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(shot["data"])
        save(path, data)
        return data


class Browser:
    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self._socket.send(json.dumps(message))
        async with asyncio.timeout(scaled(20)):
            while True:
                answer = json.loads(await self._socket.recv())
                if answer.get("id") == number:  # everything else is an event: not needed here
                    if "error" in answer:
                        raise AssertionError(f"{method}: {answer['error']}")
                    result: dict[str, Any] = answer["result"]
                    return result

    async def open(self, url: str) -> Page:
        target = await self.call("Target.createTarget", url=url)
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return Page(self, attached["sessionId"])


def save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def installed(program: str) -> bool:
    return Path(program).exists()


def read_port_file(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    return lines if len(lines) >= 2 else None


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile, stopped (by its own process id) afterwards."""
    if not installed(CHROMIUM):
        pytest.fail("chromium is not installed: scripts/system-packages installs it")
    profile = tmp_path / "chromium-profile"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        lines = await eventually(
            lambda: read_port_file(profile / "DevToolsActivePort"),
            within=30,
            interval=0.05,
            message="Chromium's DevTools port",
        )
        assert lines is not None
        port, path = lines[0], lines[1]
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as socket:
            yield Browser(socket)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(scaled(10)):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


TILE = "document.querySelector('[data-agent=\"{agent}\"]')"


async def test_status_change_shows_on_the_page_within_two_seconds(tmp_path: Path) -> None:
    """The page shows every agent, and a change in the simulator appears on it within 2 s."""
    async with running(tmp_path) as run, chromium(tmp_path) as browser:
        await run.converged()
        page = await browser.open(f"{run.url}/")
        await eventually(
            lambda: page.evaluate("document.querySelectorAll('#tiles .tile').length"),
            within=20,
            message="tiles drawn",
        )
        assert await page.evaluate("document.querySelectorAll('#tiles .tile').length") == 30
        await eventually(
            lambda: page.evaluate("document.getElementById('connection').textContent === 'Live'"),
            within=10,
            message="event stream open",
        )
        agent = next(iter(run.sim.org.agents))
        tile = TILE.format(agent=agent)
        run.sim.org.set_system_presence(agent, Presence.BREAK, cause="test")
        await eventually(
            lambda: page.evaluate(f"{tile}.dataset.status === 'BREAK'"),
            within=2,
            interval=0.05,
            message="the change on the page",
        )
        text = await page.evaluate(f"{tile}.innerText")
        assert "Break" in text  # a text label, not colour alone
        assert await page.evaluate(f"{tile}.classList.contains('st-break')")
        pills = await page.evaluate(
            "Array.from(document.querySelectorAll('#presence-counts li'), li => li.innerText)"
        )
        assert any(pill.startswith("Break") and pill.endswith("1") for pill in pills)
        ticking = await page.evaluate(f"{tile}.querySelector('.time').textContent")
        assert ticking.count(":") == 2
        shot = await page.screenshot(ARTIFACTS / "wallboard.png")
        assert shot.startswith(b"\x89PNG")


async def test_filters_from_the_url_and_stuck_agents_first(tmp_path: Path) -> None:
    """`?division=` limits the tiles; a stuck agent is highlighted, labelled and shown first."""
    async with running(tmp_path, toml=BREAK_RULE) as run, chromium(tmp_path) as browser:
        wallboard.mount(run.daemon, refresh_s=0.2)
        await run.converged()
        roster = run.daemon.roster
        division = roster[0].division_name
        members = [a for a in roster if a.division_name == division]
        stuck = members[-1].id
        run.sim.org.set_system_presence(stuck, Presence.BREAK, cause="test")
        page = await browser.open(f"{run.url}/?division={division}")
        first = "document.querySelector('#tiles .tile')"
        await eventually(
            lambda: page.evaluate(f"{first} && {first}.dataset.agent === '{stuck}'"),
            within=15,
            message="the stuck agent first",
        )
        shown = await page.evaluate(
            "Array.from(document.querySelectorAll('#tiles .tile'), t => t.dataset.agent)"
        )
        assert sorted(shown) == sorted(a.id for a in members)
        assert await page.evaluate(f"{first}.classList.contains('stuck')")
        assert "Stuck: break_test" in await page.evaluate(f"{first}.innerText")
        since = await page.evaluate(
            "Array.from(document.querySelectorAll('#tiles .tile:not(.stuck)'),"
            " t => Number(t.dataset.since))"
        )
        assert since == sorted(since)  # then the longest in status first
        assert await page.evaluate("document.getElementById('division-filter').value") == division
        await page.screenshot(ARTIFACTS / "wallboard-filtered.png")
