"""The optional bearer token of the daemon's HTTP API: one check, used by every protected route.

With no token configured (http.token empty) every request passes: the listener is then expected
to be reachable only by those allowed (loopback, a private network). With a token, a request
must carry `Authorization: Bearer <token>`: 401 without one (with a WWW-Authenticate challenge,
RFC 6750), 403 with a wrong one. The comparison takes the same time whatever the token sent.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from monitor.httpserver import HttpError, Request

TokenCheck = Callable[[Request], None]

_CHALLENGE = [("WWW-Authenticate", 'Bearer realm="monitor"')]


def token_check(token: str, *, query: str | None = None) -> TokenCheck:
    """A check of `token` for route handlers: `check(request)` raises HttpError 401/403."""

    def check(request: Request) -> None:
        require_token(request, token, query=query)

    return check


def require_token(request: Request, token: str, *, query: str | None = None) -> None:
    """Raise HttpError 401/403 unless `request` carries `token` (or no token is configured).

    `query` names a query parameter that may carry the token instead of the header: a browser's
    EventSource cannot set headers, so a bookmarked wallboard puts it in its URL.
    """
    if not token:
        return
    sent = _bearer(request.headers.get("authorization", ""))
    if sent is None and query is not None:
        sent = request.arg(query)
    if not sent:
        raise HttpError(
            401, "this endpoint needs a bearer token", code="unauthorized", headers=_CHALLENGE
        )
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise HttpError(403, "the bearer token is not valid", code="forbidden")


def _bearer(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
