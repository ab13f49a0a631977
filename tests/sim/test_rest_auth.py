"""The login service and bearer tokens of the simulator, over real sockets."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from monitor.sim.rest_auth import _basic_credentials
from tests.sim.rest_harness import Api, running, settings
from tests.support import eventually

FORM = {"grant_type": "client_credentials"}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(settings(agents=5)) as api:
        yield api


async def test_client_credentials_token(api: Api) -> None:
    """Basic credentials and the client-credentials grant give a bearer token that opens the API."""
    r = await api.http.post("/oauth/token", auth=("sim-client", "sim-secret"), data=FORM)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    # The whole seconds the token has left, rounded down: a millisecond after issue, one less.
    lifetime = api.sim.settings.token_lifetime_s
    assert lifetime - 1 <= body["expires_in"] <= lifetime
    users = await api.get("/api/v2/users", token=body["access_token"])
    assert users.status_code == 200


async def test_credentials_in_form_body(api: Api) -> None:
    """Credentials sent in the form body (client_secret_post) are accepted too."""
    form = {**FORM, "client_id": "other-client", "client_secret": "other-secret"}
    r = await api.http.post("/oauth/token", data=form)
    assert r.status_code == 200
    token = api.sim.tokens.get(r.json()["access_token"])
    assert token is not None
    assert token.client_id == "other-client"


@pytest.mark.parametrize(
    ("auth", "status", "error"),
    [
        (("sim-client", "wrong"), 401, "invalid_client"),
        (("nobody", "sim-secret"), 401, "invalid_client"),
        (None, 401, "invalid_client"),
    ],
)
async def test_bad_credentials(
    api: Api, auth: tuple[str, str] | None, status: int, error: str
) -> None:
    """Wrong or missing credentials get a 401 shaped like the login service's errors."""
    headers = {}
    if auth is not None:
        encoded = base64.b64encode(":".join(auth).encode()).decode()
        headers["Authorization"] = f"Basic {encoded}"
    r = await api.http.post("/oauth/token", headers=headers, data=FORM)
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error
    assert body["description"]
    assert body["error_description"]
    assert "access_token" not in body


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
async def test_bad_grant(api: Api, data: dict[str, str], error: str) -> None:
    """A missing or other grant type is a 400, even with good credentials."""
    r = await api.http.post("/oauth/token", auth=("sim-client", "sim-secret"), data=data)
    assert r.status_code == 400
    assert r.json()["error"] == error


async def test_json_body_refused(api: Api) -> None:
    """The token request must be form-encoded; JSON is a 400."""
    r = await api.http.post(
        "/oauth/token", auth=("sim-client", "sim-secret"), json={"grant_type": "client_credentials"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "authentication.required"),
        ("Bearer", "authentication.required"),
        ("Basic c2ltLWNsaWVudDpzaW0tc2VjcmV0", "authentication.required"),
        ("Bearer not-a-token", "bad.credentials"),
    ],
)
async def test_api_needs_a_live_bearer_token(api: Api, header: str | None, code: str) -> None:
    """Every /api/v2 request without a valid bearer token is a 401 with a Genesys error body."""
    headers = {} if header is None else {"Authorization": header}
    r = await api.http.get("/api/v2/users", headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert body["message"]
    assert r.headers["ININ-Correlation-Id"]


async def test_revoked_token_is_refused(api: Api) -> None:
    """After the client's tokens are revoked, the old token gets 401 and a new one works."""
    other = await api.new_token("other-client")
    assert api.sim.revoke_tokens("sim-client") == 1
    assert (await api.get("/api/v2/users")).status_code == 401
    assert (await api.get("/api/v2/users", token=other)).status_code == 200
    fresh = await api.new_token()
    assert (await api.get("/api/v2/users", token=fresh)).status_code == 200


async def test_expired_token_is_refused(api: Api) -> None:
    """A token made to expire gets 401; the fault is recorded."""
    assert api.sim.expire_token(api.token) is True
    r = await api.get("/api/v2/users")
    assert r.status_code == 401
    assert r.json()["code"] == "bad.credentials"
    assert [f.name for f in api.sim.faults.log] == ["expire_token"]


async def test_tokens_expire_on_time_without_use() -> None:
    """The sweeper kills a token at its expiry even when nobody uses it (so its channels die)."""
    fast = settings(agents=1, token_lifetime_s=30, time_factor=300.0)
    async with running(fast) as api:
        token = api.sim.tokens.get(api.token)
        assert token is not None
        await eventually(lambda: token.dead, within=5, message="token swept")
        assert (await api.get("/api/v2/users")).status_code == 401


@given(st.text(max_size=80))
def test_basic_header_parser_never_crashes(header: str) -> None:
    """Any Authorization header either yields credentials that round-trip or is rejected."""
    credentials = _basic_credentials(header)
    if credentials is not None:
        client_id, secret = credentials
        encoded = header.partition(" ")[2].strip()
        assert base64.b64decode(encoded).decode() == f"{client_id}:{secret}"


@given(st.text(max_size=20), st.text(max_size=20))
def test_basic_header_round_trip(client_id: str, secret: str) -> None:
    """Credentials without a colon in the id survive the Basic encoding."""
    assume(":" not in client_id)
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    assert _basic_credentials(f"Basic {encoded}") == (client_id, secret)
