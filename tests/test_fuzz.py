"""Fuzzing the running daemon: no frame from the server and no HTTP request crashes it.

The decoder on its own is fuzzed in tests/core/test_wire.py; here the inputs go through a real
daemon, watching the simulator's org over loopback. The daemon runs in an event loop of its own
thread for the whole module, so each Hypothesis example costs a few milliseconds, not a start-up:

- frames: arbitrary text, arbitrary JSON, mutated real frames and the system frames that make the
  daemon reconnect are sent by the simulator on the daemon's socket; after each example a real
  change must still be recorded (the daemon is alive and still reading).
- HTTP: arbitrary bytes and arbitrary requests are sent to the daemon's listener; the connection
  must be answered or closed, and /metrics and /healthz must still answer.
- the action endpoint: arbitrary requests, with bodies drawn around its schema; what it refuses
  it refuses with a 4xx and changes nothing.

Example counts are small here; `python -m bench.fuzz` runs the same properties with many
thousands of examples (FUZZ_EXAMPLES_FACTOR multiplies every count below).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.core.model import Kind, RoutingStatus
from monitor.sim.streaming import Socket as SimSocket
from tests.core.test_wire import (
    ACTIVITY,
    HEARTBEAT,
    PONG,
    PRESENCE_DATED,
    ROUTING,
    SOCKET_CLOSING,
    json_values,
    mutated_frames,
)
from tests.daemon import Running, running
from tests.support import eventually, scaled

T = TypeVar("T")

ACTION_TOKEN = "fuzz-token"
FACTOR = int(os.environ.get("FUZZ_EXAMPLES_FACTOR", "1"))
# Frames that make the daemon act: the channel is gone, the token revoked, the socket closing.
SYSTEM_FRAMES = [
    '{"result":"404"}',
    '{"result":404}',
    '{"result":"200"}',
    SOCKET_CLOSING,
    '{"topicName":"v2.system.token_revoked","eventBody":{"systemTopicType":"token_revoked"}}',
    '{"topicName":"v2.system.x","eventBody":{"systemTopicType":"no_longer_subscribed"}}',
    HEARTBEAT,
    PONG,
]
REAL_FRAMES = [PRESENCE_DATED, ROUTING, ACTIVITY]
# Websocket text frames are UTF-8: lone surrogates cannot be sent at all.
_TEXT = st.characters(codec="utf-8")

frames = (
    st.text(_TEXT, max_size=300)
    | json_values.map(json.dumps)
    | mutated_frames().map(lambda frame: json.dumps(frame, ensure_ascii=False))
    | st.sampled_from(SYSTEM_FRAMES + REAL_FRAMES)
    | st.sampled_from(REAL_FRAMES).map(lambda f: f[: len(f) // 2])
)

_TOKEN = st.text(
    st.sampled_from(
        "!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    ),
    min_size=1,
    max_size=10,
)
_PATHS = st.sampled_from(
    ["/", "/metrics", "/healthz", "/metrics?x=1", "//", "/%00", "/a/../metrics"]
)


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    """Bytes of one HTTP request: well formed, slightly off, or plain garbage."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=2000))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]) | _TOKEN)
    path = draw(_PATHS | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]))
    headers = draw(
        st.lists(
            st.tuples(
                _TOKEN | st.sampled_from(["Content-Length", "Transfer-Encoding", "Host"]),
                st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
                | st.sampled_from(["chunked", "-1", "99999999999", "0", "5"]),
            ),
            max_size=6,
        )
    )
    body = draw(st.binary(max_size=500))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


class LiveDaemon:
    """The simulator and the daemon in an event loop of their own thread."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tmp_path = tmp_path
        self.stack = contextlib.AsyncExitStack()
        self.run: Running

    def call(self, coroutine: Awaitable[T], within: float = 30.0) -> T:
        async def wrapped() -> T:
            return await coroutine

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        return future.result(scaled(within))

    def __enter__(self) -> LiveDaemon:
        self.thread.start()

        async def enter() -> Running:
            # Frames such as token_revoked make the daemon build a new channel (three requests);
            # thousands of them would spend its budget of 300 requests a minute, and it would
            # rightly wait, so the budget is lifted here (the simulator has no limit either).
            return await self.stack.enter_async_context(
                running(
                    self.tmp_path,
                    MONITOR_GENESYS__REQUESTS_PER_MINUTE="1000000",
                    MONITOR_API_TOKEN=ACTION_TOKEN,
                    MONITOR_ACTIONS__MAX_AGENTS="5",
                )
            )

        self.run = self.call(enter(), within=60)
        self.probe_agent = next(iter(self.run.sim.org.agents))
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.stack.aclose(), within=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(scaled(10))
            self.loop.close()

    @property
    def alive(self) -> bool:
        return not self.run.task.done()

    def send_frames(self, texts: list[str]) -> int:
        """Have the simulator send `texts` on every connected socket of the daemon."""

        def connected() -> list[SimSocket]:
            return [
                c.socket
                for c in self.run.sim.notifications.channels.all()
                if c.socket is not None and not c.socket.closing
            ]

        async def push() -> int:
            # The previous example may have made the daemon reconnect: wait for its socket.
            sockets = await eventually(connected, within=20, message="a connected socket")
            for sock in sockets:
                for text in texts:
                    sock.push(text)
            return len(sockets)

        return self.call(push())

    def still_recording(self) -> None:
        """A real change made now is recorded: the daemon is alive and reads its socket."""

        async def probe() -> None:
            org, agent = self.run.sim.org, self.probe_agent
            current = org.agent(agent).routing_status
            target = (
                RoutingStatus.IDLE
                if current is not RoutingStatus.IDLE
                else RoutingStatus.INTERACTING
            )
            org.set_routing(agent, target, cause="fuzz", force=True)
            await eventually(
                lambda: self.run.state(agent, Kind.ROUTING) == target.value,
                within=20,
                message="a real change recorded after the fuzz frames",
            )

        self.call(probe(), within=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    with LiveDaemon(tmp_path_factory.mktemp("fuzz")) as daemon:
        yield daemon
        assert daemon.alive, "the daemon stopped during the fuzzing"


FUZZ = settings(
    max_examples=30 * FACTOR,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(st.lists(frames, min_size=1, max_size=8))
def test_daemon_survives_any_frames(live: LiveDaemon, texts: list[str]) -> None:
    """No frame the server sends crashes the daemon; it keeps recording real changes."""
    assert live.send_frames(texts) >= 1
    live.still_recording()
    assert live.alive


def exchange(port: int, request: bytes, within: float = 10.0) -> bytes:
    """Send raw bytes, close our side, and read until the server closes; TimeoutError if it
    neither answers nor closes in time."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(within)) as conn:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                received += chunk
        return received


@FUZZ
@given(http_requests())
def test_web_survives_any_request(live: LiveDaemon, request: bytes) -> None:
    """Any bytes sent to the HTTP listener get an answer or a closed connection, never a hang,
    and /metrics and /healthz still answer afterwards."""
    port = live.run.daemon.web_port
    answer = exchange(port, request)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=scaled(10)) as http:
        assert http.get("/metrics").status_code == 200
        health = http.get("/healthz")
        assert health.status_code in (200, 503)
        assert health.json()["status"] in ("ok", "unavailable")
    assert live.alive


# --- the HTTP action endpoint ---------------------------------------------------------------------

_PRESENCES = st.sampled_from(["Offline", "On Queue", "Available", "Break", "Meal", "Busy", ""])
_SELECT_VALUES = (
    st.lists(st.sampled_from(["On Queue", "Available", "IDLE", "OFF_QUEUE"]) | st.text(max_size=8))
    | st.sampled_from(["10h", "0", "-1s", "1e999", "3d"])
    | json_values
)
_SELECTORS = st.dictionaries(
    st.sampled_from(
        [
            *("agents", "emails", "divisions", "queues", "presence", "routing_status"),
            *("in_status_for", "in_status_kind", "surprise"),
        ]
    ),
    _SELECT_VALUES,
    max_size=3,
)
_ACTION_BODIES = st.fixed_dictionaries(
    {"to": _PRESENCES, "select": _SELECTORS | st.just({})},
    optional={
        "dry_run": st.booleans(),
        "force": st.booleans(),
        "max_agents": st.integers(0, 50),
        "requested_by": st.text(max_size=120),
    },
)


def _spoiled(body: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**body, key: value}


@st.composite
def action_requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Headers and body of one request to the action endpoint. Mostly the right token and a body
    near its schema (so requests reach the selectors and the runner), with one field spoiled or
    added now and then; else a wrong or missing token, arbitrary JSON or arbitrary bytes."""
    auth = draw(st.sampled_from([f"Bearer {ACTION_TOKEN}"] * 6 + ["Bearer nope", "Basic eA==", ""]))
    headers = {"Content-Type": "application/json"} | ({"Authorization": auth} if auth else {})
    shape = draw(st.integers(0, 9))
    if shape < 6:
        text = json.dumps(draw(_ACTION_BODIES))
    elif shape < 8:
        body = draw(_ACTION_BODIES)
        key = draw(st.sampled_from([*body, "extra"]))
        text = json.dumps(_spoiled(body, key, draw(json_values)))
    elif shape < 9:
        text = json.dumps(draw(json_values))
    else:
        text = draw(st.binary(max_size=300)).decode("latin-1")
    return headers, text.encode()


@FUZZ
@given(action_requests())
def test_action_endpoint_survives_any_request(
    live: LiveDaemon, request: tuple[dict[str, str], bytes]
) -> None:
    """Any request to the action endpoint gets a 200 or a 4xx with a JSON error, never a 5xx,
    and a refused one changes nothing and is not audited."""
    headers, body = request
    org = live.run.sim.org
    changes_before = len(org.truth)
    store = live.run.daemon.store
    audited_before = len(live.call(store.actions()))
    with httpx.Client(base_url=live.run.url, timeout=scaled(30)) as http:
        response = http.post("/api/v1/presence", content=body, headers=headers)
    audited_after = len(live.call(store.actions()))
    event(f"HTTP {response.status_code}")
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        assert "error" in response.json()
        assert len(org.truth) == changes_before
        assert audited_after == audited_before
    assert live.alive
