"""The daemon's HTTP side: /metrics, /healthz and a landing page.

/metrics renders from memory and never calls Genesys, so a scrape stays fast and works while
Genesys is unreachable. /healthz answers whether the monitor is doing its job: 200 once every
channel is subscribed and the first snapshot is read, 503 with a JSON reason before that or when
a channel has been down longer than the configured threshold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from monitor import __version__
from monitor.httpserver import HttpServer, Request, Response, Router
from monitor.metrics import CONTENT_TYPE, Metrics


@dataclass(frozen=True)
class Health:
    ok: bool
    reasons: tuple[str, ...] = ()


# Agents brought up to date per turn of the event loop while a scrape is prepared.
_CATCH_UP_CHUNK = 1000

_LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Genesys presence monitor</title></head>
<body><h1>Genesys presence monitor {version}</h1>
<ul><li><a href="metrics">/metrics</a></li><li><a href="healthz">/healthz</a></li></ul>
</body></html>
"""


class WebApp:
    """Routes of the daemon's HTTP listener. Other parts add theirs with `router.add`."""

    def __init__(self, metrics: Metrics, health: Callable[[], Health]) -> None:
        self.metrics = metrics
        self._health = health
        self.router = Router()
        self.router.add("GET", "/", self.landing)
        self.router.add("GET", "/metrics", self.metrics_page)
        self.router.add("GET", "/healthz", self.healthz)

    async def landing(self, request: Request) -> Response:
        return Response.text(_LANDING.format(version=__version__), content_type="text/html")

    async def metrics_page(self, request: Request) -> Response:
        # Under load most agents have changed since the last scrape, and bringing 20,000 agents'
        # lines up to date takes about 80 ms of the event loop's time: it is done in chunks, with
        # frames decoded in between, until less than a chunk is left for render(). Whatever
        # changed before the scrape began is shown. The turns are bounded, at twice the chunks
        # counted at the start and one more, so that changes arriving meanwhile cannot keep the
        # scrape waiting; render() takes whatever is left then in one go.
        agents = self.metrics.agents
        for _ in range(2 * (agents.behind // _CATCH_UP_CHUNK) + 1):
            if agents.behind < _CATCH_UP_CHUNK:
                break
            agents.catch_up(_CATCH_UP_CHUNK)
            await asyncio.sleep(0)
        return Response(200, headers=[("Content-Type", CONTENT_TYPE)], parts=self.metrics.render())

    async def healthz(self, request: Request) -> Response:
        health = self._health()
        body = {"status": "ok" if health.ok else "unavailable", "reasons": list(health.reasons)}
        return Response.json(body, 200 if health.ok else 503)

    def server(self, max_body: int) -> HttpServer:
        return HttpServer(self.router, max_body=max_body, name="web")
