"""HTTP pieces every part of the simulator's REST API shares: Genesys-shaped error bodies and
bearer-token authentication."""

from __future__ import annotations

import uuid

from monitor.httpserver import HttpError, Request, Response
from monitor.sim.tokens import Token, Tokens

_DEFAULT_CODES = {
    400: "bad.request",
    401: "bad.credentials",
    403: "missing.permissions",
    404: "not.found",
    405: "method.not.allowed",
    413: "request.entity.too.large",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "gateway.timeout",
}


def genesys_errors(error: HttpError) -> Response:
    """Render an error as Genesys's `ErrorBody`: message, code, status, contextId."""
    context_id = str(uuid.uuid4())
    body = {
        "message": error.message,
        "code": error.code or _DEFAULT_CODES.get(error.status, "error"),
        "status": error.status,
        "contextId": context_id,
        "details": [],
        "errors": [],
    }
    headers = [("ININ-Correlation-Id", context_id), *error.headers]
    return Response.json(body, error.status, headers)


def require_token(request: Request, tokens: Tokens) -> Token:
    """The live token of a request's `Authorization: Bearer` header, or a 401 HttpError."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HttpError(
            401,
            "No authentication bearer token specified in authorization header.",
            code="authentication.required",
        )
    token = tokens.check(value.strip())
    if token is None:
        raise HttpError(401, "Invalid login credentials.", code="bad.credentials")
    return token
