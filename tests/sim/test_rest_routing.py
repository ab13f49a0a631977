"""Routing over REST: queues and their members (clamped pages, no totals), divisions, and the
routing status (read, and the few changes the API allows)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.core.model import Presence, RoutingStatus
from monitor.sim.org import Queue
from tests.sim.rest_harness import Api, running, settings

QUEUES = "/api/v2/routing/queues"


def status_path(user_id: str) -> str:
    return f"/api/v2/users/{user_id}/routingstatus"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(settings(agents=300, queues=2)) as api:
        yield api


def biggest_queue(api: Api) -> Queue:
    return max(api.sim.org.queues.values(), key=lambda q: len(q.member_ids))


def member_ids(api: Api, queue: Queue) -> list[str]:
    members = set(queue.member_ids)
    return [i for i in api.active_ids() if i in members]


async def test_queue_members_page_size_is_clamped(api: Api) -> None:
    """An oversized pageSize is clamped to 100, not refused; the listing has no total/pageCount."""
    queue = biggest_queue(api)
    assert len(member_ids(api, queue)) > 100
    page = await api.get_json(f"{QUEUES}/{queue.id}/members", pageSize=500)
    assert page["pageSize"] == 100
    assert len(page["entities"]) == 100
    assert "total" not in page
    assert "pageCount" not in page
    assert "lastUri" not in page
    assert page["nextUri"].startswith(f"{QUEUES}/{queue.id}/members?pageSize=100&pageNumber=2")


async def test_queue_members_page_until_no_next_uri(api: Api) -> None:
    """Following nextUri visits every active member once; the last page has no nextUri."""
    queue = biggest_queue(api)
    api.sim.deactivate(member_ids(api, queue)[0])
    page = await api.get_json(f"{QUEUES}/{queue.id}/members", pageSize=40)
    seen = [m["id"] for m in page["entities"]]
    while "nextUri" in page:
        page = await api.get_json(page["nextUri"])
        seen += [m["id"] for m in page["entities"]]
    assert seen == member_ids(api, queue)
    assert page["pageNumber"] > 1
    assert "previousUri" in page


async def test_queue_member_fields(api: Api) -> None:
    """A member carries its user, ring, joined, memberBy and routing status from the org."""
    queue = biggest_queue(api)
    agent_id = member_ids(api, queue)[0]
    api.sim.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    page = await api.get_json(f"{QUEUES}/{queue.id}/members", pageSize=1, expand="presence")
    member = page["entities"][0]
    assert member["id"] == member["user"]["id"] == agent_id
    assert member["routingStatus"]["status"] == "IDLE"
    assert (member["ringNumber"], member["joined"], member["memberBy"]) == (1, True, "user")
    assert member["user"]["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"
    assert member["selfUri"] == f"{QUEUES}/{queue.id}/members/{agent_id}"


async def test_queue_member_filters(api: Api) -> None:
    """routingStatus and presence filters keep only the matching members."""
    queue = biggest_queue(api)
    on_queue = member_ids(api, queue)[:3]
    for agent_id in on_queue:
        api.sim.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    idle = await api.get_json(f"{QUEUES}/{queue.id}/members", routingStatus="IDLE", pageSize=100)
    assert [m["id"] for m in idle["entities"]] == on_queue
    by_presence = await api.get_json(
        f"{QUEUES}/{queue.id}/members", presence="On Queue", pageSize=100
    )
    assert [m["id"] for m in by_presence["entities"]] == on_queue


async def test_unknown_queue(api: Api) -> None:
    """Members of an unknown queue are a 404."""
    r = await api.get(f"{QUEUES}/nope/members")
    assert r.status_code == 404
    assert r.json()["code"] == "not.found"


async def test_queue_listing_and_name_filter(api: Api) -> None:
    """Queues are listed by name with member counts; a trailing * matches a name prefix."""
    body = await api.get_json(QUEUES)
    org = api.sim.org
    assert body["total"] == len(org.queues)
    assert [q["name"] for q in body["entities"]] == sorted(q.name for q in org.queues.values())
    queue = biggest_queue(api)
    entity = next(q for q in body["entities"] if q["id"] == queue.id)
    assert entity["memberCount"] == len(member_ids(api, queue))
    named = await api.get_json(QUEUES, name=queue.name)
    assert [q["id"] for q in named["entities"]] == [queue.id]
    prefix = await api.get_json(QUEUES, name="Queue*")
    assert prefix["total"] == len(org.queues)


async def test_division_listing(api: Api) -> None:
    """Divisions are listed with the home division marked."""
    body = await api.get_json("/api/v2/authorization/divisions")
    org = api.sim.org
    assert {d["id"] for d in body["entities"]} == set(org.divisions)
    assert sum(d["homeDivision"] for d in body["entities"]) == 1


async def test_get_routing_status(api: Api) -> None:
    """Routing status reads the org; an unknown user is OFF_QUEUE, not a 404 (as documented)."""
    agent = api.sim.org.agents[api.active_ids()[0]]
    body = await api.get_json(status_path(agent.id))
    assert body["userId"] == agent.id
    assert body["status"] == "OFF_QUEUE"
    assert body["startTime"]
    unknown = await api.get_json(status_path("00000000-0000-4000-8000-000000000000"))
    assert unknown["status"] == "OFF_QUEUE"


async def test_put_idle_from_not_responding(api: Api) -> None:
    """PUT IDLE clears NOT_RESPONDING, recorded with cause "api"."""
    org = api.sim.org
    agent_id = api.active_ids()[0]
    org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    org.set_routing(agent_id, RoutingStatus.NOT_RESPONDING, cause="test")
    r = await api.send("PUT", status_path(agent_id), {"status": "IDLE"})
    assert r.status_code == 200
    assert r.json()["status"] == "IDLE"
    assert (org.truth[-1].value, org.truth[-1].cause) == ("IDLE", "api")


async def test_put_off_queue_leaves_on_queue(api: Api) -> None:
    """PUT OFF_QUEUE takes an On Queue agent off queue: presence Available, routing OFF_QUEUE."""
    org = api.sim.org
    agent_id = api.active_ids()[0]
    org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    r = await api.send("PUT", status_path(agent_id), {"status": "OFF_QUEUE"})
    assert r.status_code == 200
    assert r.json()["status"] == "OFF_QUEUE"
    agent = org.agents[agent_id]
    assert org.presence_of(agent) is Presence.AVAILABLE
    assert [c.cause for c in org.truth[-2:]] == ["api", "api"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"status": "IDLE"}, "only from NOT_RESPONDING"),
        ({"status": "INTERACTING"}, "cannot be set to INTERACTING"),
        ({"status": "ON_QUEUE"}, "not a routing status"),
        ({}, "status is required"),
        (["IDLE"], "JSON object"),
    ],
)
async def test_put_refused(api: Api, body: Any, fragment: str) -> None:
    """Routing statuses the API cannot set are a 400 with a clear message and change nothing."""
    agent_id = api.active_ids()[0]
    r = await api.send("PUT", status_path(agent_id), body)
    assert r.status_code == 400
    assert fragment in r.json()["message"]
    assert api.sim.org.truth == []


async def test_put_unknown_user(api: Api) -> None:
    """Setting the routing status of an unknown user is a 404."""
    r = await api.send("PUT", status_path("nope"), {"status": "OFF_QUEUE"})
    assert r.status_code == 404
