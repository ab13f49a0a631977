"""The live wallboard: one page, served from the package, fed by server-sent events.

    GET /                    the page (wallboard.html, .js, .css beside this file; no build step,
                             nothing fetched from elsewhere)
    GET /wallboard/state     a JSON snapshot of the agents shown, for the first paint
    GET /wallboard/events    server-sent events: a `snapshot` first, then one `transition` per
                             change recorded, a fresh `snapshot` every `refresh_s` (roster changes,
                             stuck rules) and a keep-alive comment when nothing else was sent

`?division=` and `?queue=` choose the agents (names or ids, any case), so a screen can be
bookmarked. With an API token configured the data routes need it, in the Authorization header or,
because a browser's EventSource cannot send headers, as `?token=` in the page's URL.

Each client has a bounded queue of transitions. A client that falls behind (a slow screen, a
burst of snapshot reconciliation) does not get an ever-growing backlog: the queue is dropped and
it gets one fresh snapshot instead, which says everything the dropped transitions would have.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from monitor.api import AgentFilter, AgentView, DaemonView
from monitor.core.model import Agent, Kind, Transition
from monitor.http_auth import require_token
from monitor.httpserver import HttpError, Request, Response, Router

if TYPE_CHECKING:
    from monitor.service import Daemon

_ASSETS = {
    "wallboard.html": "text/html; charset=utf-8",
    "wallboard.js": "text/javascript; charset=utf-8",
    "wallboard.css": "text/css; charset=utf-8",
}
KEEPALIVE_S = 15.0
REFRESH_S = 60.0
BACKLOG = 1000


class LiveView(AgentView, Protocol):
    """An AgentView that also tells of each transition as it is recorded."""

    def listen(self, listener: Callable[[Transition], None]) -> Callable[[], None]: ...


def asset(name: str) -> bytes:
    """One of the page's files, read from the installed package."""
    return resources.files(__name__).joinpath(name).read_bytes()


def _label(agent: Agent) -> str:
    return agent.division_name or agent.division_id


def snapshot(view: AgentView, wanted: AgentFilter) -> tuple[dict[str, Any], set[str]]:
    """The state of the agents `wanted` admits, and their ids."""
    roster = list(view.agents())
    shown: list[dict[str, Any]] = []
    members: set[str] = set()
    for agent in roster:
        if not wanted.admits(agent, None, None):
            continue
        presence = view.state(agent.id, Kind.PRESENCE)
        routing = view.state(agent.id, Kind.ROUTING)
        shown.append(
            {
                "id": agent.id,
                "name": agent.name or agent.id,
                "division": _label(agent),
                "queues": list(agent.queue_ids),
                "presence": presence.value if presence else None,
                "presence_since": presence.since_ms if presence else None,
                "routing": routing.value if routing else None,
                "routing_since": routing.since_ms if routing else None,
                "stuck": view.stuck_rules(agent.id),
            }
        )
        members.add(agent.id)
    data = {
        "now_ms": view.now_ms(),
        "agents": shown,
        "divisions": sorted({_label(a) for a in roster if _label(a)}, key=str.casefold),
        "queues": sorted({q for a in roster for q in a.queue_ids}, key=str.casefold),
    }
    return data, members


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _stream(
    view: LiveView, wanted: AgentFilter, keepalive_s: float, refresh_s: float, backlog: int
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[Transition] = asyncio.Queue(backlog)
    behind = False

    def heard(transition: Transition) -> None:
        # Called inside Recorder.record, which must not block: never wait here.
        nonlocal behind
        if behind:
            return
        try:
            queue.put_nowait(transition)
        except asyncio.QueueFull:
            behind = True

    # Listen before taking the snapshot: a change in between then arrives twice (harmless, the
    # page keeps the newest) rather than not at all.
    stop = view.listen(heard)
    loop = asyncio.get_running_loop()
    try:
        # The browser reconnects this soon after a drop; the snapshot then catches it up.
        yield b"retry: 2000\n\n"
        data, members = snapshot(view, wanted)
        yield _event("snapshot", data)
        refresh_at = loop.time() + refresh_s
        while True:
            wait = max(0.0, min(keepalive_s, refresh_at - loop.time()))
            try:
                async with asyncio.timeout(wait):
                    transition = await queue.get()
            except TimeoutError:
                if loop.time() >= refresh_at:
                    data, members = snapshot(view, wanted)
                    yield _event("snapshot", data)
                    refresh_at = loop.time() + refresh_s
                else:
                    yield b": keep-alive\n\n"
                continue
            if behind:
                while not queue.empty():
                    queue.get_nowait()
                behind = False
                data, members = snapshot(view, wanted)
                yield _event("snapshot", data)
                continue
            if transition.late or transition.agent_id not in members:
                continue  # a late change is history: the agent's current state did not move
            yield _event(
                "transition",
                {
                    "agent_id": transition.agent_id,
                    "kind": transition.kind.value,
                    "value": transition.to_value,
                    "since_ms": transition.event_ms,
                    "now_ms": view.now_ms(),
                },
            )
    finally:
        stop()


def add_routes(
    router: Router,
    view: LiveView,
    *,
    keepalive_s: float = KEEPALIVE_S,
    refresh_s: float = REFRESH_S,
    backlog: int = BACKLOG,
) -> None:
    """Mount the page, its files, the snapshot and the event stream on `router`."""

    async def page(request: Request) -> Response:
        return Response(200, asset("wallboard.html"), [("Content-Type", _ASSETS["wallboard.html"])])

    async def static(request: Request) -> Response:
        name = request.params["name"]
        if name not in _ASSETS:
            raise HttpError(404, f"no file {name!r}", code="not.found")
        headers = [("Content-Type", _ASSETS[name]), ("Cache-Control", "no-cache")]
        return Response(200, asset(name), headers)

    async def state(request: Request) -> Response:
        require_token(request, view.token, query="token")
        data, _ = snapshot(view, AgentFilter.from_request(request, states=False))
        return Response.json(data, headers=[("Cache-Control", "no-store")])

    async def events(request: Request) -> Response:
        require_token(request, view.token, query="token")
        wanted = AgentFilter.from_request(request, states=False)
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("X-Accel-Buffering", "no"),  # a proxy in front must not hold events back
        ]
        stream = _stream(view, wanted, keepalive_s, refresh_s, backlog)
        return Response(200, headers=headers, stream=stream)

    # The router tries patterns in the order added: the fixed paths go before /wallboard/{name}.
    router.add("GET", "/", page)
    router.add("GET", "/wallboard/state", state)
    router.add("GET", "/wallboard/events", events)
    router.add("GET", "/wallboard/{name}", static)


def mount(
    daemon: Daemon,
    *,
    keepalive_s: float = KEEPALIVE_S,
    refresh_s: float = REFRESH_S,
    backlog: int = BACKLOG,
) -> DaemonView:
    """Mount the wallboard on a daemon's listener; its former landing page moves to /about."""
    view = DaemonView(daemon)
    daemon.web.router.add("GET", "/about", daemon.web.landing)
    add_routes(
        daemon.web.router, view, keepalive_s=keepalive_s, refresh_s=refresh_s, backlog=backlog
    )
    return view
