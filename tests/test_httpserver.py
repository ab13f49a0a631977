"""The shared HTTP server, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.httpserver import HttpError, HttpServer, Request, Response, Router


def make_router() -> Router:
    router = Router()

    async def echo(request: Request) -> Response:
        return Response.json(
            {
                "id": request.params["item_id"],
                "q": request.args("id"),
                "body": request.body.decode(),
            }
        )

    async def fail(request: Request) -> Response:
        raise HttpError(418 if request.arg("teapot") else 422, "nope", code="x.y")

    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"data: {n}\n\n".encode()

        return Response(200, headers=[("Content-Type", "text/event-stream")], stream=stream())

    router.add("POST", "/items/{item_id}", echo)
    router.add("GET", "/items/{item_id}", echo)
    router.add("GET", "/fail", fail)
    router.add("GET", "/crash", crash)
    router.add("GET", "/events", events)
    return router


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    server = HttpServer(make_router(), max_body=64)
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await server.close()


async def test_routes_params_and_list_queries(base_url: str) -> None:
    """Path parameters are decoded, and list queries accept repeated and comma-joined values."""
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{base_url}/items/a%20b?id=1,2&id=3", content=b"hi")
    assert r.status_code == 200
    assert r.json() == {"id": "a b", "q": ["1", "2", "3"], "body": "hi"}


async def test_errors_are_json(base_url: str) -> None:
    """Unknown paths, wrong methods, handler errors and crashes all answer with a JSON error."""
    async with httpx.AsyncClient() as client:
        missing = await client.get(f"{base_url}/nowhere")
        wrong = await client.delete(f"{base_url}/items/1")
        refused = await client.get(f"{base_url}/fail")
        crashed = await client.get(f"{base_url}/crash")
    assert (missing.status_code, missing.json()["error"]) == (404, "no resource at /nowhere")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, POST"
    assert refused.status_code == 422
    assert refused.json() == {"error": "nope", "code": "x.y"}
    assert crashed.status_code == 500


async def test_body_limit(base_url: str) -> None:
    """A body over the limit is refused with 413 and never reaches the handler."""
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{base_url}/items/1", content=b"x" * 65)
    assert r.status_code == 413


async def test_keep_alive_serves_many_requests_on_one_connection(base_url: str) -> None:
    """Several requests reuse one connection."""
    async with httpx.AsyncClient() as client:
        for n in range(5):
            r = await client.get(f"{base_url}/items/{n}")
            assert r.json()["id"] == str(n)


async def test_streamed_response(base_url: str) -> None:
    """A streamed response is delivered chunk by chunk and ends cleanly."""
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{base_url}/events")
    assert r.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_garbage_gets_400_and_server_survives(base_url: str) -> None:
    """A malformed request line is answered with 400 and the server keeps serving."""
    port = int(base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    reply = await reader.read(1000)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 400")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base_url}/items/1")).status_code == 200
