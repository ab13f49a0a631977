"""Rate limits and injected REST faults: the 429 budget per token, 429 storms, bursts of 5xx."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypothesis import given
from hypothesis import strategies as st

from monitor.sim.ratelimit import WINDOW_MS, RateLimiter
from tests.sim.rest_harness import Api, running, settings
from tests.support import eventually

USERS = "/api/v2/users"


class ManualClock:
    """Simulated time that moves only when told."""

    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.ms


def assert_rate_limited(response_status: int, body: dict[str, object], retry_after: str) -> int:
    assert response_status == 429
    seconds = int(retry_after)
    assert body == {
        "message": f"Rate limit exceeded the maximum. Retry the request in [{seconds}] seconds",
        "code": "too.many.requests.retry.after",
        "status": 429,
        "contextId": body["contextId"],
        "details": [],
        "errors": [],
    }
    return seconds


async def exhaust(api: Api, token: str, budget: int) -> None:
    for _ in range(budget):
        r = await api.get(USERS, token=token, pageSize=1)
        assert r.status_code == 200, r.text


async def test_429_after_the_budget() -> None:
    """The request after the per-token budget is a 429 with the Genesys body and Retry-After."""
    async with running(settings(agents=3, requests_per_minute=5)) as api:
        await exhaust(api, api.token, 5)
        r = await api.get(USERS)
        seconds = assert_rate_limited(r.status_code, r.json(), r.headers["Retry-After"])
        assert 1 <= seconds <= 60
        assert not [h for h in r.headers if h.lower().startswith("inin-ratelimit")]
        assert r.headers["ININ-Correlation-Id"]


async def test_budget_recovers_after_retry_after() -> None:
    """Once Retry-After (simulated) seconds have passed, the token is served again."""
    async with running(settings(agents=3, requests_per_minute=3, time_factor=600.0)) as api:
        await exhaust(api, api.token, 3)

        async def served() -> bool:
            return (await api.get(USERS)).status_code == 200

        probe: Callable[[], bool | Awaitable[bool]] = served
        await eventually(probe, within=5, message="budget refilled")


async def test_budgets_are_per_token_and_per_client() -> None:
    """Another token of the same client, and another client's token, have budgets of their own."""
    async with running(settings(agents=3, requests_per_minute=4)) as api:
        same_client = await api.new_token()
        other_client = await api.new_token("other-client")
        await exhaust(api, api.token, 4)
        assert (await api.get(USERS)).status_code == 429
        await exhaust(api, same_client, 4)
        await exhaust(api, other_client, 4)
        assert (await api.get(USERS, token=other_client)).status_code == 429


async def test_login_and_admin_are_not_limited() -> None:
    """Token requests and the admin API do not spend a token's budget and are not limited."""
    async with running(settings(agents=3, requests_per_minute=2)) as api:
        await exhaust(api, api.token, 2)
        for _ in range(3):
            await api.new_token()
            assert (await api.http.get("/sim/status")).status_code == 200
        assert api.sim.limiter.used(api.token) == 2


async def test_rate_limit_storm() -> None:
    """During a storm every authenticated API call is a 429 with the storm's Retry-After; a bad
    token is still a 401; the login works; after the storm, requests are served again."""
    async with running(settings(agents=3)) as api:
        api.sim.rate_limit_storm(seconds=0.3, retry_after=7)
        r = await api.get(USERS)
        assert assert_rate_limited(r.status_code, r.json(), r.headers["Retry-After"]) == 7
        assert (await api.get(USERS, token="bogus")).status_code == 401
        await api.new_token()

        async def over() -> bool:
            return (await api.get(USERS)).status_code == 200

        probe: Callable[[], bool | Awaitable[bool]] = over
        await eventually(probe, within=5, message="storm over")
        assert [(f.name, f.args) for f in api.sim.faults.log] == [
            ("rate_limit_storm", {"seconds": 0.3, "retry_after": 7})
        ]


async def test_server_error_burst() -> None:
    """The next N API requests get the configured 5xx with a Genesys body, then service resumes."""
    async with running(settings(agents=3)) as api:
        api.sim.server_errors(2, status=503)
        for _ in range(2):
            r = await api.get(USERS)
            assert r.status_code == 503
            assert r.json()["code"] == "service.unavailable"
            assert r.json()["status"] == 503
            assert r.headers["ININ-Correlation-Id"]
        assert (await api.get(USERS)).status_code == 200


async def test_server_errors_through_admin_api() -> None:
    """The admin API injects a 502 burst by name, with JSON arguments."""
    async with running(settings(agents=3)) as api:
        r = await api.http.post("/sim/faults/server_errors", json={"count": 1, "status": 502})
        assert r.status_code == 200
        assert (await api.get(USERS)).status_code == 502
        assert (await api.get(USERS)).status_code == 200


def test_retry_after_is_exact() -> None:
    """A refused token is served exactly Retry-After seconds later, and not a second earlier."""
    clock = ManualClock()
    limiter = RateLimiter(3, clock)
    for step in (0, 10_000, 25_000):
        clock.ms += step
        assert limiter.admit("t") is None
    clock.ms += 5_000
    wait = limiter.admit("t")
    assert wait == 20
    clock.ms += (wait - 1) * 1000
    assert limiter.admit("t") is not None
    clock.ms += 1000
    assert limiter.admit("t") is None


@given(
    limit=st.integers(1, 6),
    steps=st.lists(st.integers(0, 30_000), min_size=1, max_size=60),
)
def test_window_never_admits_more_than_the_budget(limit: int, steps: list[int]) -> None:
    """In any 60-second window at most `limit` requests are admitted, and a refusal's Retry-After
    always points past the end of the window that refused it."""
    clock = ManualClock()
    limiter = RateLimiter(limit, clock)
    admitted: list[int] = []
    for step in steps:
        clock.ms += step
        wait = limiter.admit("t")
        if wait is None:
            admitted.append(clock.ms)
        else:
            in_window = [t for t in admitted if t > clock.ms - WINDOW_MS]
            assert len(in_window) == limit
            assert clock.ms + wait * 1000 >= min(in_window) + WINDOW_MS
        assert sum(1 for t in admitted if t > clock.ms - WINDOW_MS) <= limit


def test_zero_budget_means_unlimited() -> None:
    """requests_per_minute = 0 turns rate limiting off."""
    limiter = RateLimiter(0, ManualClock())
    assert all(limiter.admit("t") is None for _ in range(1000))
