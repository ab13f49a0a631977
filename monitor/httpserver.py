"""A small asyncio HTTP/1.1 server on h11, with a router.

Both the daemon's HTTP side (`web.py`) and the simulator's REST API use it. h11 does the parsing
(it comes with httpx already); this module owns the connection loop: keep-alive, body limits,
idle timeouts, streamed responses (server-sent events) and a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import h11
import structlog

log = structlog.get_logger(__name__)

_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HttpError(Exception):
    """Raised by a handler to answer with an error status; `ErrorRenderer` shapes the body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or []


@dataclass(slots=True)
class Request:
    """One HTTP request with its whole body read."""

    method: str
    path: str  # as sent, percent-encoded; the router decodes the parameters it extracts
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of a list query parameter, repeated (`id=a&id=b`) or comma-joined (`id=a,b`)."""
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]

    def json(self) -> Any:
        """The body parsed as JSON; a 400 `HttpError` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(
                400, f"the request body is not valid JSON: {exc}", code="bad.request"
            ) from exc


@dataclass(slots=True)
class Response:
    """An HTTP response: a whole body (`body`, or `parts` sent one after another, when the body
    is large), or a stream of chunks (server-sent events)."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    parts: Sequence[bytes] = ()

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, [("Content-Type", "application/json"), *(headers or [])])

    @classmethod
    def text(
        cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
    ) -> Response:
        return cls(status, text.encode(), [("Content-Type", content_type)])


Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[HttpError], Response]


def plain_errors(error: HttpError) -> Response:
    """The default error body: `{"error": message}`."""
    body: dict[str, Any] = {"error": error.message}
    if error.code:
        body["code"] = error.code
    return Response.json(body, error.status, error.headers)


_PARAM = re.compile(r"\{(\w+)\}")


class Router:
    """Maps a method and a path pattern (`/api/v2/users/{user_id}`) to a handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", pattern) + "$")
        for existing, methods in self._routes:
            if existing.pattern == regex.pattern:
                methods[method.upper()] = handler
                return
        self._routes.append((regex, {method.upper(): handler}))

    async def __call__(self, request: Request) -> Response:
        for regex, methods in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None and request.method == "HEAD":
                handler = methods.get("GET")
            if handler is None:
                allowed = ", ".join(sorted(methods))
                raise HttpError(
                    405, f"{request.method} is not allowed here", headers=[("Allow", allowed)]
                )
            request.params = {k: unquote(v) for k, v in match.groupdict().items()}
            return await handler(request)
        raise HttpError(404, f"no resource at {request.path}", code="not.found")


class HttpServer:
    """Serves `handler` on a TCP port until closed."""

    def __init__(
        self,
        handler: Handler,
        *,
        errors: ErrorRenderer = plain_errors,
        max_body: int = 1 << 20,
        max_header: int = 16 * 1024,
        idle_timeout: float = 75.0,
        name: str = "http",
    ) -> None:
        self._handler = handler
        self._errors = errors
        self._max_body = max_body
        self._max_header = max_header
        self._idle_timeout = idle_timeout
        self._name = name
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0
        self.host = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and start accepting; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=1 << 16)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])
        return self.port

    async def close(self) -> None:
        """Stop accepting, then end every open connection (streams included)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HttpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # start_server runs this callback as a plain function; the connection gets its own task so
        # that close() can cancel it.
        conn_task = asyncio.get_running_loop().create_task(
            self._serve_connection(reader, writer), name=f"{self._name}-connection"
        )
        self._connections.add(conn_task)
        conn_task.add_done_callback(self._connections.discard)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header)
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        try:
            while True:
                request = await self._read_request(conn, reader, writer, client)
                if request is None:
                    return
                response = await self._respond(request)
                await self._write_response(conn, reader, writer, request, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            return
        except h11.ProtocolError as exc:
            await self._send_error(conn, writer, HttpError(400, f"malformed HTTP request: {exc}"))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: str,
    ) -> Request | None:
        head: h11.Request | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(self._idle_timeout):
                    data = await reader.read(1 << 16)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                head = event
                if conn.client_is_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self._max_body:
                    await self._send_error(
                        conn, writer, HttpError(413, f"request body over {self._max_body} bytes")
                    )
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return _to_request(head, b"".join(chunks), client)

    async def _respond(self, request: Request) -> Response:
        try:
            response = await self._handler(request)
        except HttpError as error:
            response = self._errors(error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("http_handler_failed", method=request.method, path=request.path)
            response = self._errors(HttpError(500, "internal error", code="internal.server.error"))
        if request.method == "HEAD":
            response.stream = None
        return response

    async def _write_response(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request,
        response: Response,
    ) -> None:
        headers = [(k.encode(), v.encode()) for k, v in response.headers]
        if response.stream is None:
            parts = () if request.method == "HEAD" else response.parts or (response.body,)
            if request.method != "HEAD" and response.status not in (204, 304):
                headers.append((b"Content-Length", str(sum(map(len, parts))).encode()))
            writer.write(conn.send(_h11_response(response.status, headers)))
            for part in parts:
                # Passed through, not copied; draining after each part keeps the transport's
                # buffer to about one part, not a copy of the whole body.
                writer.writelines(conn.send_with_data_passthrough(h11.Data(data=part)) or ())
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            return
        # A stream (server-sent events) lasts until the client goes away or the server closes.
        # The only way to notice a departed client on an otherwise silent connection is to read:
        # EOF on the reader cancels the stream.
        writer.write(conn.send(_h11_response(response.status, headers)))
        await writer.drain()
        stream_task = asyncio.current_task()
        assert stream_task is not None

        async def watch_eof() -> None:
            with contextlib.suppress(Exception):
                while await reader.read(1024):
                    pass
            stream_task.cancel()

        watcher = asyncio.create_task(watch_eof(), name=f"{self._name}-stream-eof")
        try:
            async for chunk in response.stream:
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except asyncio.CancelledError:
            if watcher.done():
                # The client left: that ends this connection, not the server, so the
                # cancellation that watch_eof() requested is taken back.
                stream_task.uncancel()
                raise ConnectionResetError("client closed the stream") from None
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            aclose = getattr(response.stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _send_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, error: HttpError
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        response = self._errors(error)
        headers = [(k.encode(), v.encode()) for k, v in response.headers]
        headers += [
            (b"Content-Length", str(len(response.body)).encode()),
            (b"Connection", b"close"),
        ]
        with contextlib.suppress(Exception):
            writer.write(conn.send(_h11_response(response.status, headers)))
            writer.write(conn.send(h11.Data(data=response.body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()


def _h11_response(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    reason = _REASONS.get(status, "")
    return h11.Response(status_code=status, headers=headers, reason=reason.encode())


def _to_request(head: h11.Request, body: bytes, client: str) -> Request:
    target = head.target.decode("latin-1")
    raw_path, _, raw_query = target.partition("?")
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=head.method.decode("ascii").upper(),
        path=raw_path,
        query=parse_qs(raw_query, keep_blank_values=True),
        headers=headers,
        body=body,
        client=client,
    )
