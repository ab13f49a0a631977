"""The login service: `POST /oauth/token` with the client-credentials grant.

Genesys serves it on `login.{domain}`; the simulator serves it on the API's own port, which is
where the official SDK looks when the host has no `api.` to replace. Errors come from the login
service, not the platform API, so they have its shape (`error`, `description`,
`error_description`) rather than Genesys's `ErrorBody`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import parse_qs

from monitor.clock import Clock
from monitor.httpserver import Request, Response, Router
from monitor.sim.tokens import Tokens

TOKEN_PATH = "/oauth/token"


def _login_error(status: int, error: str, description: str) -> Response:
    body = {"error": error, "description": description, "error_description": description}
    return Response.json(body, status)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class AuthApi:
    """Issues client-credentials tokens; `on_issue` is told about each one (the token sweeper
    uses it to learn of a new expiry)."""

    def __init__(self, tokens: Tokens, clock: Clock, on_issue: Callable[[], None]) -> None:
        self._tokens = tokens
        self._clock = clock
        self._on_issue = on_issue

    def add_routes(self, router: Router) -> None:
        router.add("POST", TOKEN_PATH, self._token)

    async def _token(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _login_error(
                400, "invalid_request", "the body must be application/x-www-form-urlencoded"
            )
        try:
            form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _login_error(400, "invalid_request", "the body is not UTF-8")
        grant = form.get("grant_type", [""])[0]
        if not grant:
            return _login_error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return _login_error(
                400, "unsupported_grant_type", f"grant type {grant!r} is not supported"
            )
        credentials = _basic_credentials(request.headers.get("authorization", ""))
        if credentials is None:
            # RFC 6749 also allows the credentials in the form body.
            client_id = form.get("client_id", [""])[0]
            secret = form.get("client_secret", [""])[0]
            credentials = (client_id, secret) if client_id else None
        if credentials is None:
            return _login_error(401, "invalid_client", "client authentication is required")
        token = self._tokens.issue(*credentials)
        if token is None:
            return _login_error(401, "invalid_client", "client not found or secret mismatch")
        self._on_issue()
        expires_in = max(0, (token.expires_ms - self._clock.now_ms()) // 1000)
        return Response.json(
            {"access_token": token.value, "token_type": "bearer", "expires_in": expires_in}
        )
