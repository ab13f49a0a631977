"""Users over REST: the paged listing and its limits, one user, expansions, and search."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from monitor.core.model import Presence
from monitor.httpserver import HttpError
from monitor.sim.search import SearchQuery
from tests.sim.rest_harness import Api, running, settings

USERS = "/api/v2/users"
SEARCH = "/api/v2/users/search"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running() as api:
        yield api


async def test_listing_shape_and_uris(api: Api) -> None:
    """A page carries total, pageCount and URIs; nextUri/previousUri only where a page exists."""
    first = await api.get_json(USERS, pageSize=15, expand="presence")
    assert (first["total"], first["pageCount"], first["pageSize"], first["pageNumber"]) == (
        40,
        3,
        15,
        1,
    )
    assert len(first["entities"]) == 15
    assert "previousUri" not in first
    assert first["nextUri"] == "/api/v2/users?pageSize=15&pageNumber=2&expand=presence"
    assert first["lastUri"] == "/api/v2/users?pageSize=15&pageNumber=3&expand=presence"
    last = await api.get_json(first["lastUri"])
    assert len(last["entities"]) == 10
    assert "nextUri" not in last
    assert last["previousUri"].endswith("pageNumber=2&expand=presence")


async def test_default_page_size_and_order(api: Api) -> None:
    """Without paging parameters a page has 25 users, ordered by name; descending reverses it."""
    page = await api.get_json(USERS)
    assert page["pageSize"] == 25
    ids = api.active_ids()
    assert [u["id"] for u in page["entities"]] == ids[:25]
    down = await api.get_json(USERS, sortOrder="descending", pageSize=40)
    assert [u["id"] for u in down["entities"]] == ids[::-1]


async def test_user_fields_match_org(api: Api) -> None:
    """Each user has the documented fields, equal to the org's state."""
    page = await api.get_json(USERS, pageSize=40)
    for user in page["entities"]:
        agent = api.sim.org.agents[user["id"]]
        division = api.sim.org.divisions[agent.division_id]
        assert user["name"] == agent.name
        assert user["email"] == agent.email
        assert user["division"] == {
            "id": division.id,
            "name": division.name,
            "selfUri": f"/api/v2/authorization/divisions/{division.id}",
        }
        assert user["state"] == "active"
        assert user["version"] == agent.version
        assert user["selfUri"] == f"/api/v2/users/{agent.id}"
        if agent.manager_id:
            assert user["manager"]["id"] == agent.manager_id
        assert "presence" not in user
        assert "routingStatus" not in user


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"pageSize": 501}, "pageSize must be at most 500"),
        ({"pageSize": 0}, "pageSize must be at least 1"),
        ({"pageNumber": "two"}, "pageNumber must be an integer"),
        ({"state": "sleeping"}, "state must be one of"),
        ({"sortOrder": "sideways"}, "sortOrder must be one of"),
        ({"pageSize": 500, "pageNumber": 21}, "10,000"),
    ],
)
async def test_bad_listing_parameters(api: Api, params: dict[str, Any], fragment: str) -> None:
    """Out-of-range paging and unknown values are a 400 that names the problem."""
    r = await api.get(USERS, **params)
    assert r.status_code == 400
    assert fragment in r.json()["message"]


async def test_result_cap_applies_to_inactive_always() -> None:
    """With the cap off for active users, deep pages of active users work but inactive still 400."""
    async with running(settings(users_cap_applies_to_active=False)) as api:
        deep = await api.get_json(USERS, pageSize=500, pageNumber=21)
        assert deep["entities"] == []
        assert deep["total"] == 40
        r = await api.get(USERS, pageSize=500, pageNumber=21, state="inactive")
        assert r.status_code == 400
        ok = await api.get(USERS, pageSize=500, pageNumber=20, state="inactive")
        assert ok.status_code == 200


async def test_state_filter(api: Api) -> None:
    """Deactivated users leave the default listing and appear under inactive and any."""
    gone = api.active_ids()[3]
    api.sim.deactivate(gone)
    active = await api.get_json(USERS, pageSize=100)
    assert gone not in {u["id"] for u in active["entities"]}
    assert active["total"] == 39
    inactive = await api.get_json(USERS, state="inactive")
    assert [u["id"] for u in inactive["entities"]] == [gone]
    assert inactive["entities"][0]["state"] == "inactive"
    both = await api.get_json(USERS, state="any", pageSize=100)
    assert both["total"] == 40


async def test_bulk_fetch_by_id(api: Api) -> None:
    """`id` accepts comma-joined and repeated ids; unknown ids are left out."""
    ids = api.active_ids()
    r = await api.http.get(
        USERS,
        params=[("id", f"{ids[0]},{ids[1]}"), ("id", ids[2]), ("id", "nope")],
        headers=api.auth(),
    )
    assert r.status_code == 200
    assert sorted(u["id"] for u in r.json()["entities"]) == sorted(ids[:3])
    assert r.json()["total"] == 3


async def test_expand_presence_and_routing(api: Api) -> None:
    """Expanded users carry presence and routing status equal to the org's state."""
    org = api.sim.org
    agent_id = api.active_ids()[0]
    org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    page = await api.get_json(USERS, pageSize=40, expand="presence,routingStatus")
    user = next(u for u in page["entities"] if u["id"] == agent_id)
    agent = org.agents[agent_id]
    assert user["presence"]["presenceDefinition"]["id"] == agent.presence_definition_id
    assert user["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"
    assert user["routingStatus"] == {
        "userId": agent_id,
        "status": "IDLE",
        "startTime": user["routingStatus"]["startTime"],
    }
    assert all("presence" in u and "routingStatus" in u for u in page["entities"])


async def test_expansions_are_best_effort() -> None:
    """With an omit rate, some users come back without expansions, the same way for a seed."""
    patterns = []
    for _ in range(2):
        async with running(settings(expand_omit_rate=0.5, seed=7)) as api:
            page = await api.get_json(USERS, pageSize=40, expand="presence,routingStatus")
            patterns.append([("presence" in u, "routingStatus" in u) for u in page["entities"]])
    assert patterns[0] == patterns[1]
    flags = [flag for pair in patterns[0] for flag in pair]
    assert any(flags)
    assert not all(flags)


async def test_get_one_user(api: Api) -> None:
    """GET /users/{id} returns the user (expanded on request); unknown and inactive are 404."""
    ids = api.active_ids()
    user = await api.get_json(f"{USERS}/{ids[0]}", expand="routingStatus")
    assert user["id"] == ids[0]
    assert user["routingStatus"]["status"] == "OFF_QUEUE"
    missing = await api.get(f"{USERS}/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not.found"
    api.sim.deactivate(ids[1])
    assert (await api.get(f"{USERS}/{ids[1]}")).status_code == 404
    inactive = await api.get_json(f"{USERS}/{ids[1]}", state="inactive")
    assert inactive["state"] == "inactive"


# --- search ---------------------------------------------------------------------------------------


async def search(api: Api, body: dict[str, Any]) -> httpx.Response:
    return await api.send("POST", SEARCH, body)


async def test_search_exact_email(api: Api) -> None:
    """EXACT on email finds that one user, case-insensitively."""
    agent = api.sim.org.agents[api.active_ids()[5]]
    r = await search(
        api, {"query": [{"type": "EXACT", "fields": ["email"], "value": agent.email.upper()}]}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 1
    assert [u["id"] for u in body["results"]] == [agent.id]
    assert body["types"] == ["users"]
    assert body["pageNumber"] == 1


async def test_search_operators_and_groups(api: Api) -> None:
    """AND, OR and NOT combine as a boolean query, nested groups included."""
    agents = [api.sim.org.agents[i] for i in api.active_ids()]
    a, b, c = agents[0], agents[1], agents[2]
    or_query = [
        {"type": "EXACT", "fields": ["id"], "value": a.id, "operator": "OR"},
        {"type": "EXACT", "fields": ["id"], "values": [b.id, c.id], "operator": "OR"},
        {"type": "EXACT", "fields": ["id"], "value": c.id, "operator": "NOT"},
    ]
    body = (await search(api, {"query": or_query})).json()
    assert {u["id"] for u in body["results"]} == {a.id, b.id}
    grouped = [
        {"type": "CONTAINS", "fields": ["email"], "value": "@example.com"},
        {"group": or_query[:2]},
    ]
    body = (await search(api, {"query": grouped})).json()
    assert {u["id"] for u in body["results"]} == {a.id, b.id, c.id}
    prefix = a.name.split()[0]
    starts = (
        await search(api, {"query": [{"type": "STARTS_WITH", "fields": ["name"], "value": prefix}]})
    ).json()
    expected = {x.id for x in agents if x.name.lower().startswith(prefix.lower())}
    assert {u["id"] for u in starts["results"]} == expected


async def test_search_pages_with_q64_cursors(api: Api) -> None:
    """Search pages by pageNumber, and its nextPage cursor (GET ?q64=) returns the next page."""
    body = {"pageSize": 15, "query": [{"type": "CONTAINS", "fields": ["name"], "value": " "}]}
    first = (await search(api, body)).json()
    assert first["total"] == 40
    assert first["pageCount"] == 3
    assert "previousPage" not in first
    second = await api.get_json(first["nextPage"])
    third = await api.get_json(second["nextPage"])
    assert "nextPage" not in third
    ids = [u["id"] for page in (first, second, third) for u in page["results"]]
    assert ids == api.active_ids()


async def test_search_finds_active_users_unless_asked(api: Api) -> None:
    """Without a state criterion only active users are found; with one, inactive users too."""
    gone = api.active_ids()[0]
    api.sim.deactivate(gone)
    by_id = [{"type": "EXACT", "fields": ["id"], "value": gone}]
    assert (await search(api, {"query": by_id})).json()["total"] == 0
    with_state = [*by_id, {"type": "EXACT", "fields": ["state"], "value": "inactive"}]
    assert (await search(api, {"query": with_state})).json()["total"] == 1


async def test_search_expands(api: Api) -> None:
    """Search results carry the expansions asked for."""
    body = {"expand": ["presence", "routingStatus"], "pageSize": 3}
    results = (await search(api, body)).json()["results"]
    assert len(results) == 3
    assert all("presence" in u and "routingStatus" in u for u in results)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"pageSize": 101}, "pageSize must be at most 100"),
        ({"query": [{"type": "REGEX", "fields": ["name"], "value": "."}]}, "not supported"),
        ({"query": [{"type": "EXACT", "fields": ["salary"], "value": "1"}]}, "cannot be searched"),
        ({"query": [{"type": "EXACT", "fields": ["name"]}]}, "needs value or values"),
        ({"query": "name=Ada"}, "list of criteria"),
        ({"sortOrder": "RANDOM"}, "sortOrder"),
    ],
)
async def test_search_bad_requests(api: Api, body: dict[str, Any], fragment: str) -> None:
    """Unsupported or malformed search requests are a 400 naming the problem."""
    r = await search(api, body)
    assert r.status_code == 400
    assert fragment in r.json()["message"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
CRITERION = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["EXACT", "CONTAINS", "STARTS_WITH", "MATCH_ALL", "RANGE", 3]),
        "fields": st.lists(st.sampled_from(["name", "email", "id", "nope"]), max_size=2) | JSON,
        "value": st.text(max_size=5) | JSON,
        "values": st.lists(st.text(max_size=5), max_size=2) | JSON,
        "operator": st.sampled_from(["AND", "OR", "NOT", "XOR"]) | JSON,
        "group": st.lists(JSON, max_size=2),
    },
)


@hsettings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "query": st.lists(CRITERION, max_size=3) | JSON,
            "pageSize": st.integers(-2, 200) | JSON,
            "pageNumber": st.integers(-2, 5) | JSON,
            "sortOrder": st.sampled_from(["ASC", "DESC", "SCORE", "UP"]) | JSON,
            "sortBy": st.sampled_from(["name", "email", "shoe"]) | JSON,
            "expand": st.lists(st.text(max_size=6), max_size=2) | JSON,
        },
    )
)
def test_search_request_parsing_never_crashes(body: dict[str, Any]) -> None:
    """Any JSON search request either parses or is refused with a 400, never another error."""
    outcome: SearchQuery | HttpError
    try:
        outcome = SearchQuery.parse(body, max_page_size=100)
    except HttpError as error:
        outcome = error
    if isinstance(outcome, HttpError):
        assert outcome.status == 400
        assert outcome.message
    else:
        assert 1 <= outcome.page_size <= 100
        assert outcome.page_number >= 1


# --- scale ----------------------------------------------------------------------------------------


async def test_twenty_thousand_agents_page_through() -> None:
    """An org of 20,000 agents starts, and paging it all with pageSize 500 returns each agent once
    (ascending to the 10,000 cap, then descending for the rest, as a client must when the cap
    applies to active users)."""
    big = settings(agents=20_000)
    async with running(big) as api:
        seen: list[str] = []
        for order in ("ascending", "descending"):
            for number in range(1, 21):
                page = await api.get_json(USERS, pageSize=500, pageNumber=number, sortOrder=order)
                seen += [u["id"] for u in page["entities"]]
        assert page["total"] == 20_000
        assert len(set(seen)) == 20_000 == len(seen)
        over = await api.get(USERS, pageSize=500, pageNumber=21)
        assert over.status_code == 400


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page_size=st.integers(1, 45), descending=st.booleans())
def test_paging_follows_next_uri_to_every_user(page_size: int, descending: bool) -> None:
    """Following nextUri from the first page visits every active user exactly once, in order."""
    asyncio.run(_page_all(page_size, descending))


async def _page_all(page_size: int, descending: bool) -> None:
    async with running(settings(agents=37)) as api:
        api.sim.deactivate(api.active_ids()[4])
        order = "descending" if descending else "ascending"
        page = await api.get_json(USERS, pageSize=page_size, sortOrder=order)
        seen = [u["id"] for u in page["entities"]]
        while "nextUri" in page:
            page = await api.get_json(page["nextUri"])
            seen += [u["id"] for u in page["entities"]]
        expected = api.active_ids()
        assert seen == (expected[::-1] if descending else expected)
        assert page["pageCount"] == -(-36 // page_size)
