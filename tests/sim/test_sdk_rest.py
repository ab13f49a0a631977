"""The official Genesys SDK (PureCloudPlatformClientV2), pointed at the simulator, performs every
REST call the monitor uses, and each answer deserialises into the SDK's models without loss.

"Without loss" is checked two ways: no field holds the SDK's `outdated_sdk_version` enum fallback,
and the model serialised back equals the raw JSON the simulator sent (times compared as instants),
so every key the simulator sends is one the SDK knows. The SDK is synchronous, so each call runs
in a thread while the simulator serves on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
from PureCloudPlatformClientV2 import (
    ApiClient,
    MutableUserPresence,
    PresenceApi,
    PresenceDefinition,
    RoutingApi,
    UserPresence,
    UsersApi,
    UserSearchCriteria,
    UserSearchRequest,
)
from PureCloudPlatformClientV2 import RoutingStatus as SdkRoutingStatus
from PureCloudPlatformClientV2.rest import ApiException

from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.sim.frames import iso_ms
from monitor.sim.org import SimAgent
from monitor.sim.settings import RestPresenceCasing
from tests.sim.rest_harness import Api, running, settings

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        return datetime.fromisoformat(value).timestamp()
    return value


def _fallbacks(model: Any, path: str = "") -> list[str]:
    """Paths of every field that holds the SDK's unknown-enum fallback."""
    if isinstance(model, list):
        return [p for n, item in enumerate(model) for p in _fallbacks(item, f"{path}[{n}]")]
    if isinstance(model, dict):
        return [p for k, v in model.items() for p in _fallbacks(v, f"{path}.{k}")]
    if isinstance(model, str):
        return [path] if model == "outdated_sdk_version" else []
    if hasattr(model, "swagger_types"):
        return [
            p
            for name in model.swagger_types
            for p in _fallbacks(getattr(model, name), f"{path}.{name}")
        ]
    return []


class Sdk:
    """The SDK's API classes on one client, with every answer checked for loss."""

    def __init__(self, api_url: str) -> None:
        self.client = ApiClient(host=api_url)
        self.users = UsersApi(self.client)
        self.presence = PresenceApi(self.client)
        self.routing = RoutingApi(self.client)

    async def login(self, client_id: str = "sim-client", secret: str = "sim-secret") -> None:
        await asyncio.to_thread(self.client.get_client_credentials_token, client_id, secret)

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        model = await asyncio.to_thread(method, *args, **kwargs)
        assert _fallbacks(model) == []
        raw = json.loads(self.client.last_response.data)
        assert _normalise(self.client.sanitize_for_serialization(model)) == _normalise(raw)
        return model


def deprecated_call() -> pytest.WarningsRecorder:
    # The SDK warns on every call of the deprecated /presencedefinitions API (its decorator
    # overrides warning filters, so the warning is caught rather than filtered).
    return pytest.warns(DeprecationWarning, match="get_presencedefinitions")


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running(settings(agents=120, queues=3)) as api:
        yield api


@pytest.fixture
async def sdk(api: Api) -> Sdk:
    sdk = Sdk(api.sim.api_url)
    await sdk.login()
    return sdk


def agent_ids(api: Api) -> list[str]:
    return api.active_ids()


def assert_presence(api: Api, agent: SimAgent, model: Any) -> None:
    assert model.presence_definition.id == agent.presence_definition_id
    assert model.modified_date.timestamp() * 1000 == pytest.approx(agent.presence_modified_ms)
    assert model.message == agent.presence_message


def assert_routing(agent: SimAgent, model: Any) -> None:
    assert model.status == agent.routing_status.value
    assert iso_ms(int(model.start_time.timestamp() * 1000 + 0.5)) == iso_ms(agent.routing_start_ms)


async def test_client_credentials_token(api: Api) -> None:
    """The SDK's client-credentials login, at the API URL, gets a live token of the simulator."""
    sdk = Sdk(api.sim.api_url)
    await sdk.login("other-client", "other-secret")
    token = api.sim.tokens.check(sdk.client.access_token)
    assert token is not None
    assert token.client_id == "other-client"


async def test_get_users_expanded(api: Api, sdk: Sdk) -> None:
    """get_users with expand deserialises; users, presences and routing equal the org's."""
    org = api.sim.org
    for agent_id in agent_ids(api)[:10]:
        org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
    listing = await sdk.call(
        sdk.users.get_users, page_size=50, page_number=1, expand=["presence", "routingStatus"]
    )
    assert listing.total == 120
    assert listing.page_count == 3
    assert listing.next_uri is not None
    assert [u.id for u in listing.entities] == agent_ids(api)[:50]
    for user in listing.entities:
        agent = org.agents[user.id]
        assert (user.name, user.email, user.state) == (agent.name, agent.email, "active")
        assert user.division.id == agent.division_id
        assert_presence(api, agent, user.presence)
        assert_routing(agent, user.routing_status)


async def test_get_users_by_id_and_state(api: Api, sdk: Sdk) -> None:
    """get_users with an id list and with state=inactive deserialise and filter."""
    ids = agent_ids(api)
    api.sim.deactivate(ids[7])
    by_id = await sdk.call(sdk.users.get_users, id=ids[:5], page_size=25)
    assert sorted(u.id for u in by_id.entities) == sorted(ids[:5])
    inactive = await sdk.call(sdk.users.get_users, state="inactive")
    assert [(u.id, u.state) for u in inactive.entities] == [(ids[7], "inactive")]


async def test_get_user(api: Api, sdk: Sdk) -> None:
    """get_user deserialises, with its manager and expansions."""
    org = api.sim.org
    agent = next(a for a in org.agents.values() if a.manager_id)
    user = await sdk.call(sdk.users.get_user, agent.id, expand=["presence", "routingStatus"])
    assert user.id == agent.id
    assert user.manager.id == agent.manager_id
    assert_presence(api, agent, user.presence)
    assert_routing(agent, user.routing_status)


async def test_post_users_search(api: Api, sdk: Sdk) -> None:
    """post_users_search with SDK-built criteria finds the user and deserialises."""
    agent = api.sim.org.agents[agent_ids(api)[3]]
    criteria = UserSearchCriteria()
    criteria.type = "EXACT"
    criteria.fields = ["email"]
    criteria.value = agent.email
    body = UserSearchRequest()
    body.query = [criteria]
    body.page_size = 10
    body.expand = ["routingStatus"]
    found = await sdk.call(sdk.users.post_users_search, body)
    assert found.total == 1
    assert [u.id for u in found.results] == [agent.id]
    assert_routing(agent, found.results[0].routing_status)


async def test_presence_definitions(api: Api, sdk: Sdk) -> None:
    """Both definitions APIs deserialise; the new one's PascalCase enum has no fallbacks."""
    org = api.sim.org
    new = await sdk.call(sdk.presence.get_presence_definitions)
    assert new.total == len(org.definitions)
    on_queue = org.system_definition(Presence.ON_QUEUE).id
    by_id = {d.id: d for d in new.entities}
    assert by_id[on_queue].system_presence == "OnQueue"
    assert by_id[on_queue].type == "System"
    with deprecated_call():
        old = await sdk.call(sdk.presence.get_presencedefinitions, page_size=100)
    assert {d.id for d in old.entities} == set(org.definitions)
    one = await sdk.call(sdk.presence.get_presence_definition, on_queue)
    assert one.id == on_queue
    system = await sdk.call(sdk.presence.get_systempresences)
    assert len(system) == len(Presence)


async def test_user_presence_read_and_patch(api: Api, sdk: Sdk) -> None:
    """get/patch_user_presences_purecloud deserialise; the patch couples routing, cause "api"."""
    org = api.sim.org
    agent = org.agents[agent_ids(api)[0]]
    before = await sdk.call(sdk.presence.get_user_presences_purecloud, agent.id)
    assert_presence(api, agent, before)
    body = UserPresence()
    definition = PresenceDefinition()
    definition.id = org.system_definition(Presence.ON_QUEUE).id
    body.presence_definition = definition
    after = await sdk.call(sdk.presence.patch_user_presences_purecloud, agent.id, body)
    assert after.presence_definition.id == definition.id
    assert after.presence_definition.system_presence == "On Queue"
    assert agent.routing_status is RoutingStatus.IDLE
    assert [(c.kind, c.cause) for c in org.truth] == [(Kind.PRESENCE, "api"), (Kind.ROUTING, "api")]


async def test_bulk_presence_read_and_write(api: Api, sdk: Sdk) -> None:
    """get_users_presences_purecloud_bulk and put_users_presences_bulk deserialise and agree."""
    org = api.sim.org
    ids = agent_ids(api)[:50]
    breaks = org.system_definition(Presence.BREAK).id
    items = []
    for agent_id in ids[:20]:
        item = MutableUserPresence()
        item.id = agent_id
        definition = PresenceDefinition()
        definition.id = breaks
        item.presence_definition = definition
        items.append(item)
    written = await sdk.call(sdk.presence.put_users_presences_bulk, items)
    assert [p.id for p in written] == ids[:20]
    read = await sdk.call(sdk.presence.get_users_presences_purecloud_bulk, id=ids)
    assert [p.user_id for p in read] == ids
    for presence in read:
        assert_presence(api, org.agents[presence.user_id], presence)
    assert {p.presence_definition.id for p in read[:20]} == {breaks}


async def test_queue_members(api: Api, sdk: Sdk) -> None:
    """get_routing_queue_members deserialises; members and routing equal the org's."""
    org = api.sim.org
    queue = max(org.queues.values(), key=lambda q: len(q.member_ids))
    listing = await sdk.call(
        sdk.routing.get_routing_queue_members, queue.id, page_size=100, expand=["presence"]
    )
    members = set(queue.member_ids)
    expected = [i for i in agent_ids(api) if i in members]
    assert [m.id for m in listing.entities] == expected[:100]
    for member in listing.entities:
        agent = org.agents[member.id]
        assert member.user.id == agent.id
        assert member.member_by == "user"
        assert member.joined is True
        assert_routing(agent, member.routing_status)
        assert_presence(api, agent, member.user.presence)
    queues = await sdk.call(sdk.routing.get_routing_queues, page_size=25)
    assert {q.id for q in queues.entities} == set(org.queues)


async def test_routing_status_read_and_write(api: Api, sdk: Sdk) -> None:
    """get/put_user_routingstatus deserialise; PUT IDLE clears NOT_RESPONDING."""
    org = api.sim.org
    agent = org.agents[agent_ids(api)[0]]
    org.set_system_presence(agent.id, Presence.ON_QUEUE, cause="test")
    org.set_routing(agent.id, RoutingStatus.NOT_RESPONDING, cause="test")
    status = await sdk.call(sdk.users.get_user_routingstatus, agent.id)
    assert_routing(agent, status)
    body = SdkRoutingStatus()
    body.status = "IDLE"
    cleared = await sdk.call(sdk.users.put_user_routingstatus, agent.id, body)
    assert cleared.status == "IDLE"
    assert agent.routing_status is RoutingStatus.IDLE
    assert org.truth[-1].cause == "api"
    unknown = await sdk.call(
        sdk.users.get_user_routingstatus, "00000000-0000-4000-8000-000000000000"
    )
    assert unknown.status == "OFF_QUEUE"


async def test_errors_reach_the_sdk_as_api_exceptions(api: Api, sdk: Sdk) -> None:
    """A 404 reaches the SDK as an ApiException with the status and a Genesys error body."""
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(sdk.users.get_user, "00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["code"] == "not.found"


@pytest.mark.parametrize("casing", ["spaced", "upper", "pascal"])
async def test_every_casing_deserialises(casing: RestPresenceCasing) -> None:
    """Each configured REST casing of systemPresence deserialises without loss."""
    async with running(settings(agents=4, rest_presence_casing=casing)) as api:
        sdk = Sdk(api.sim.api_url)
        await sdk.login()
        agent_id = api.active_ids()[0]
        api.sim.org.set_system_presence(agent_id, Presence.ON_QUEUE, cause="test")
        presence = await sdk.call(sdk.presence.get_user_presences_purecloud, agent_id)
        spelled = {"spaced": "On Queue", "upper": "ON_QUEUE", "pascal": "OnQueue"}[casing]
        assert presence.presence_definition.system_presence == spelled
        with deprecated_call():
            await sdk.call(sdk.presence.get_presencedefinitions, page_size=100)
        await sdk.call(sdk.users.get_users, expand=["presence"])
