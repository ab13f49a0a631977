"""Presence over REST: definitions, one user's presence (read and patch, with the routing
coupling), and the bulk read and write with their limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.core.model import Kind, Presence
from monitor.sim.settings import RestPresenceCasing
from tests.sim.rest_harness import Api, running, settings

DEFINITIONS = "/api/v2/presence/definitions"
BULK_GET = "/api/v2/users/presences/purecloud/bulk"
BULK_PUT = "/api/v2/users/presences/bulk"


def presence_path(user_id: str) -> str:
    return f"/api/v2/users/{user_id}/presences/purecloud"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(settings(agents=60)) as api:
        yield api


def definition_id(api: Api, presence: Presence) -> str:
    return api.sim.org.system_definition(presence).id


async def test_definitions_not_paged(api: Api) -> None:
    """The definitions API lists every active definition at once, PascalCase, typed System/User."""
    body = await api.get_json(DEFINITIONS)
    org = api.sim.org
    assert set(body) == {"total", "entities", "selfUri"}
    assert body["total"] == len(body["entities"]) == len(org.definitions)
    by_id = {d["id"]: d for d in body["entities"]}
    on_queue = by_id[definition_id(api, Presence.ON_QUEUE)]
    assert on_queue["systemPresence"] == "OnQueue"
    assert on_queue["type"] == "System"
    assert on_queue["languageLabels"] == {"en_US": "On Queue"}
    custom = [d for d in body["entities"] if d["type"] == "User"]
    assert custom
    assert all(not d["deactivated"] for d in custom)


async def test_deactivated_definitions(api: Api) -> None:
    """Deactivated definitions are listed only with deactivated=TRUE."""
    custom = next(d for d in api.sim.org.definitions.values() if not d.primary)
    custom.deactivated = True
    listed = {d["id"] for d in (await api.get_json(DEFINITIONS))["entities"]}
    assert custom.id not in listed
    with_all = await api.get_json(DEFINITIONS, deactivated="TRUE")
    assert custom.id in {d["id"] for d in with_all["entities"]}


async def test_one_definition_and_locale(api: Api) -> None:
    """One definition by id, named in the asked locale; an unknown id is a 404."""
    custom = next(d for d in api.sim.org.definitions.values() if "de_DE" in d.labels)
    body = await api.get_json(f"{DEFINITIONS}/{custom.id}", localeCode="de_DE")
    assert body["id"] == custom.id
    assert body["name"] == custom.labels["de_DE"]
    assert (await api.get(f"{DEFINITIONS}/nope")).status_code == 404


@pytest.mark.parametrize(
    ("casing", "spelled"), [("spaced", "On Queue"), ("upper", "ON_QUEUE"), ("pascal", "OnQueue")]
)
async def test_rest_casing_setting(casing: RestPresenceCasing, spelled: str) -> None:
    """Outside the definitions API, systemPresence follows the configured casing."""
    async with running(settings(agents=3, rest_presence_casing=casing)) as api:
        agent_id = api.active_ids()[0]
        api.sim.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
        presence = await api.get_json(presence_path(agent_id))
        assert presence["presenceDefinition"]["systemPresence"] == spelled
        bulk = await api.get_json(BULK_GET, id=agent_id)
        assert bulk[0]["presenceDefinition"]["systemPresence"] == spelled
        old = await api.get_json("/api/v2/presencedefinitions", pageSize=100)
        spellings = {d["systemPresence"] for d in old["entities"]}
        assert spelled in spellings
        new = await api.get_json(DEFINITIONS)
        assert "OnQueue" in {d["systemPresence"] for d in new["entities"]}


async def test_deprecated_definitions_paged(api: Api) -> None:
    """The deprecated /presencedefinitions API pages with total and URIs."""
    total = len(api.sim.org.definitions)
    first = await api.get_json("/api/v2/presencedefinitions", pageSize=4)
    assert first["total"] == total
    assert first["pageCount"] == -(-total // 4)
    assert len(first["entities"]) == 4
    assert "nextUri" in first
    assert {"id", "name", "languageLabels", "systemPresence", "primary"} <= set(
        first["entities"][0]
    )


async def test_system_presences(api: Api) -> None:
    """/systempresences lists one entry per system presence."""
    body = await api.get_json("/api/v2/systempresences")
    assert {p["id"] for p in body} == {p.value for p in Presence}
    assert {"id", "name", "selfUri"} == set(body[0])


async def test_get_presence(api: Api) -> None:
    """A user's Genesys presence matches the org; an unknown user is a 404."""
    agent = api.sim.org.agents[api.active_ids()[0]]
    body = await api.get_json(presence_path(agent.id))
    assert body["presenceDefinition"]["id"] == agent.presence_definition_id
    assert body["presenceDefinition"]["systemPresence"] == "Offline"
    assert body["source"] == "PURECLOUD"
    assert body["primary"] is True
    assert (await api.get(presence_path("nope"))).status_code == 404


async def test_patch_on_queue_couples_routing(api: Api) -> None:
    """Patching to On Queue makes routing IDLE, leaving makes it OFF_QUEUE; truth says "api"."""
    org = api.sim.org
    agent_id = api.active_ids()[0]
    before = len(org.truth)
    body = {"presenceDefinition": {"id": definition_id(api, Presence.ON_QUEUE)}}
    r = await api.send("PATCH", presence_path(agent_id), body)
    assert r.status_code == 200
    assert r.json()["presenceDefinition"]["systemPresence"] == "On Queue"
    assert org.agents[agent_id].routing_status.value == "IDLE"
    changes = org.truth[before:]
    assert [(c.kind, c.value, c.cause) for c in changes] == [
        (Kind.PRESENCE, "ON_QUEUE", "api"),
        (Kind.ROUTING, "IDLE", "api"),
    ]
    body = {"presenceDefinition": {"id": definition_id(api, Presence.BREAK)}}
    r = await api.send("PATCH", presence_path(agent_id), body)
    assert r.status_code == 200
    status = await api.get_json(f"/api/v2/users/{agent_id}/routingstatus")
    assert status["status"] == "OFF_QUEUE"
    assert [c.cause for c in org.truth[before:]] == ["api"] * 4


async def test_patch_message_only(api: Api) -> None:
    """A patch with only a message keeps the definition and sets the message."""
    agent = api.sim.org.agents[api.active_ids()[1]]
    definition = agent.presence_definition_id
    r = await api.send("PATCH", presence_path(agent.id), {"message": "back at 3", "primary": True})
    assert r.status_code == 200
    assert r.json()["message"] == "back at 3"
    assert agent.presence_definition_id == definition
    assert agent.presence_message == "back at 3"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"presenceDefinition": {"id": "nope"}}, 400, "does not exist"),
        ({"presenceDefinition": "ON_QUEUE"}, 400, "object with an id"),
        ({"message": 5}, 400, "message must be a string"),
        ({"primary": "yes"}, 400, "primary"),
        ([], 400, "JSON object"),
    ],
)
async def test_patch_bad_bodies(api: Api, body: Any, status: int, fragment: str) -> None:
    """Bad patch bodies are a 400 naming the problem, and change nothing."""
    agent_id = api.active_ids()[0]
    before = len(api.sim.org.truth)
    r = await api.send("PATCH", presence_path(agent_id), body)
    assert r.status_code == status
    assert fragment in r.json()["message"]
    assert len(api.sim.org.truth) == before


async def test_patch_unknown_user(api: Api) -> None:
    """Patching an unknown user's presence is a 404."""
    body = {"presenceDefinition": {"id": definition_id(api, Presence.AVAILABLE)}}
    assert (await api.send("PATCH", presence_path("nope"), body)).status_code == 404


async def test_bulk_get(api: Api) -> None:
    """Bulk read takes comma-joined and repeated ids and leaves unknown ids out."""
    ids = api.active_ids()[:4]
    r = await api.http.get(
        BULK_GET,
        params=[("id", ",".join(ids[:3])), ("id", ids[3]), ("id", "nope")],
        headers=api.auth(),
    )
    assert r.status_code == 200
    body = r.json()
    assert [p["userId"] for p in body] == ids
    assert all(p["presenceDefinition"]["systemPresence"] == "Offline" for p in body)
    assert (await api.get(BULK_GET)).status_code == 400


async def test_bulk_get_over_limit(api: Api) -> None:
    """More than 50 ids is a 400 by default."""
    r = await api.get(BULK_GET, id=",".join(api.active_ids()[:51]))
    assert r.status_code == 400
    assert "at most 50" in r.json()["message"]


async def test_bulk_get_truncates_when_configured() -> None:
    """With bulk_presence_over_limit=truncate, the first 50 ids are answered."""
    async with running(settings(agents=60, bulk_presence_over_limit="truncate")) as api:
        ids = api.active_ids()
        body = await api.get_json(BULK_GET, id=",".join(ids[:55]))
        assert [p["userId"] for p in body] == ids[:50]


async def test_bulk_put(api: Api) -> None:
    """Bulk write sets each user's presence (coupling routing) and returns their presences."""
    ids = api.active_ids()[:3]
    on_queue = definition_id(api, Presence.ON_QUEUE)
    items = [{"id": i, "presenceDefinition": {"id": on_queue}} for i in ids]
    r = await api.send("PUT", BULK_PUT, items)
    assert r.status_code == 200
    assert [p["id"] for p in r.json()] == ids
    org = api.sim.org
    assert all(org.agents[i].routing_status.value == "IDLE" for i in ids)
    assert {c.cause for c in org.truth} == {"api"}


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda ids, d: [{"id": i, "presenceDefinition": {"id": d}} for i in ids[:51]],
            "at most 50",
        ),
        (lambda ids, d: [{"id": ids[0], "presenceDefinition": {"id": d}}, {"id": "nope"}], "nope"),
        (lambda ids, d: [{"id": ids[0]}], "neither"),
        (lambda ids, d: [], "at least one"),
        (lambda ids, d: {"id": ids[0]}, "JSON array"),
    ],
)
async def test_bulk_put_refused_changes_nobody(api: Api, make: Any, fragment: str) -> None:
    """A bulk write with any bad item, or over the limit, is a 400 and changes nobody."""
    body = make(api.active_ids(), definition_id(api, Presence.AVAILABLE))
    r = await api.send("PUT", BULK_PUT, body)
    assert r.status_code == 400
    assert fragment in r.json()["message"]
    assert api.sim.org.truth == []
