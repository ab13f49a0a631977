"""The simulator's notification REST API: channels, subscriptions and their limits."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from websockets.exceptions import ConnectionClosed

from tests.sim.notifications_harness import CHANNELS, recv_json, running_sim
from tests.support import eventually


def _parse_ms(text: str) -> int:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_create_channel_shape() -> None:
    """A new channel has a Genesys-shaped id, a connectUri to the websocket port, and a 24 h expiry."""
    async with running_sim() as sim:
        before = sim.clock.now_ms()
        channel = await sim.create_channel()
        after = sim.clock.now_ms()
    assert re.fullmatch(r"streaming-\d+-[a-z0-9]{26}", channel["id"])
    port = sim.notifications.ws_port
    assert channel["connectUri"] == f"ws://127.0.0.1:{port}/channels/{channel['id']}"
    expires = _parse_ms(channel["expires"])
    assert before + 86_400_000 <= expires <= after + 86_400_000


async def test_requests_need_a_live_token() -> None:
    """Without a token, or with a revoked one, every notification endpoint answers 401."""
    async with running_sim() as sim:
        channel = await sim.create_channel()
        missing = await sim.http.post(CHANNELS)
        dead = sim.new_token()
        sim.tokens.revoke(dead)
        revoked = await sim.http.get(CHANNELS, headers=sim.auth(dead))
        subs = await sim.http.get(f"{CHANNELS}/{channel['id']}/subscriptions")
    assert (missing.status_code, revoked.status_code, subs.status_code) == (401, 401, 401)
    assert missing.json()["code"] == "authentication.required"


async def test_list_channels_by_token_and_by_client() -> None:
    """includechannels=token lists the token's channels; oauthclient adds the others without ids."""
    async with running_sim() as sim:
        mine = await sim.create_channel()
        second = sim.new_token()
        theirs = await sim.create_channel(second)
        await sim.create_channel(sim.new_token("other-client"))
        by_token = await sim.http.get(CHANNELS, headers=sim.auth())
        by_client = await sim.http.get(
            CHANNELS, params={"includechannels": "oauthclient"}, headers=sim.auth()
        )
        bad = await sim.http.get(CHANNELS, params={"includechannels": "all"}, headers=sim.auth())
    assert by_token.json() == {"entities": [mine]}
    assert by_client.json() == {"entities": [mine, {"expires": theirs["expires"]}]}
    assert bad.status_code == 400


async def test_head_channel() -> None:
    """HEAD is 200 for the client's channel (any of its tokens), 404 for unknown or foreign ones."""
    async with running_sim() as sim:
        channel = await sim.create_channel()
        own = await sim.head(channel["id"])
        same_client = await sim.head(channel["id"], sim.new_token())
        other_client = await sim.head(channel["id"], sim.new_token("other-client"))
        unknown = await sim.head("streaming-1-" + "a" * 26)
    assert (own, same_client, other_client, unknown) == (200, 200, 404, 404)


async def test_put_replaces_post_adds_get_lists_delete_clears() -> None:
    """PUT replaces the list, POST adds to it, GET lists it, DELETE clears it with no body."""
    async with running_sim() as sim:
        a, b, c = sim.agent_ids()[:3]
        channel = await sim.create_channel()
        cid = channel["id"]
        put = await sim.subscribe(cid, [f"v2.users.{a}.presence", f"v2.users.{b}.presence"])
        post = await sim.subscribe(cid, [f"v2.users.{c}.routingStatus"], method="POST")
        listed = await sim.topics(cid)
        replaced = await sim.subscribe(cid, [f"v2.users.{c}.activity"])
        deleted = await sim.http.delete(f"{CHANNELS}/{cid}/subscriptions", headers=sim.auth())
        after_delete = await sim.topics(cid)
    assert put.status_code == 200
    assert [e["id"] for e in put.json()["entities"]] == [
        f"v2.users.{a}.presence",
        f"v2.users.{b}.presence",
    ]
    assert all(e["state"] == "Permitted" for e in post.json()["entities"])
    assert listed == [
        f"v2.users.{a}.presence",
        f"v2.users.{b}.presence",
        f"v2.users.{c}.routingStatus",
    ]
    assert [e["id"] for e in replaced.json()["entities"]] == [f"v2.users.{c}.activity"]
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert after_delete == []


async def test_delete_status_is_configurable() -> None:
    """DELETE subscriptions answers with settings.delete_subscriptions_status."""
    async with running_sim(delete_subscriptions_status=200) as sim:
        channel = await sim.create_channel()
        deleted = await sim.http.delete(
            f"{CHANNELS}/{channel['id']}/subscriptions", headers=sim.auth()
        )
    assert (deleted.status_code, deleted.content) == (200, b"")


async def test_unknown_and_foreign_channels_are_404() -> None:
    """Subscriptions of an unknown channel, or another client's, are 404 for every method."""
    async with running_sim() as sim:
        channel = await sim.create_channel()
        foreign = sim.new_token("other-client")
        statuses = []
        for method in ("GET", "POST", "PUT", "DELETE"):
            for cid, token in (("streaming-3-" + "b" * 26, sim.token), (channel["id"], foreign)):
                response = await sim.http.request(
                    method,
                    f"{CHANNELS}/{cid}/subscriptions",
                    json=[],
                    headers=sim.auth(token),
                )
                statuses.append(response.status_code)
    assert statuses == [404] * 8


async def test_bad_bodies_and_arguments_are_400() -> None:
    """Invalid JSON, a body of the wrong shape, or a bad ignoreErrors value is a 400."""
    async with running_sim() as sim:
        cid = (await sim.create_channel())["id"]
        url = f"{CHANNELS}/{cid}/subscriptions"
        bodies = [b"not json", b"", b'{"id": "x"}', b'["x"]', b'[{"id": 5}]', b"[{}]"]
        statuses = [
            (await sim.http.put(url, content=body, headers=sim.auth())).status_code
            for body in bodies
        ]
        bad_flag = await sim.http.put(
            url, params={"ignoreErrors": "maybe"}, json=[], headers=sim.auth()
        )
        error = bad_flag.json()
    assert statuses == [400] * len(bodies)
    assert bad_flag.status_code == 400
    assert {"message", "code", "status", "contextId"} <= set(error)


async def test_topic_limit_is_400_and_applies_nothing() -> None:
    """1,000 topics fit a channel; one more is a 400 and leaves the subscriptions unchanged."""
    async with running_sim() as sim:
        cid = (await sim.create_channel())["id"]
        topics = [f"v2.users.{uuid.UUID(int=n)}.presence" for n in range(1000)]
        full = await sim.subscribe(cid, topics)
        one_more = await sim.subscribe(
            cid, [f"v2.users.{uuid.UUID(int=5000)}.presence"], method="POST"
        )
        too_many = await sim.subscribe(cid, [*topics, f"v2.users.{uuid.UUID(int=5001)}.activity"])
        listed = await sim.topics(cid)
    assert full.status_code == 200
    assert len(full.json()["entities"]) == 1000
    assert (one_more.status_code, too_many.status_code) == (400, 400)
    assert one_more.json()["code"] == "bad.request"
    assert listed == topics


async def test_combined_topic_counts_as_one() -> None:
    """1,000 combined topics (3,000 event types) fit one channel: each counts as one topic."""
    async with running_sim() as sim:
        cid = (await sim.create_channel())["id"]
        topics = [
            f"v2.users.{uuid.UUID(int=n)}?presence&routingStatus&activity" for n in range(1000)
        ]
        response = await sim.subscribe(cid, topics)
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["entities"]] == topics


async def test_combined_topic_length_limit() -> None:
    """A combined topic of 200 characters is accepted; a longer one is refused (Rejected, or 400)."""
    agent = str(uuid.UUID(int=7))
    fits = f"v2.users.{agent}?presence" + "&routingStatus" * 4 + "&presence" * 10
    too_long = fits + "&activity"
    assert len(fits) == 200
    async with running_sim() as sim:
        cid = (await sim.create_channel())["id"]
        ok = await sim.subscribe(cid, [fits])
        refused = await sim.subscribe(cid, [too_long], method="POST", ignore_errors=True)
        listed = await sim.topics(cid)
    async with running_sim(unknown_topic="error") as strict:
        cid = (await strict.create_channel())["id"]
        failed = await strict.subscribe(cid, [too_long])
    assert ok.json()["entities"] == [
        {
            "id": fits,
            "state": "Permitted",
            "selfUri": f"{CHANNELS}/{ok.url.path.split('/')[-2]}/subscriptions",
        }
    ]
    rejected = [e for e in refused.json()["entities"] if e["id"] == too_long]
    assert rejected[0]["state"] == "Rejected"
    assert "at most 200" in rejected[0]["rejectionReason"]
    assert listed == [fits]
    assert failed.status_code == 400


async def test_forbidden_topics_fail_the_request_without_ignore_errors() -> None:
    """A topic the client may not see makes the whole request a 403, and nothing is applied."""
    async with running_sim() as probe:
        forbidden_agent = probe.agent_ids()[0]
    async with running_sim(forbidden_agent_ids=frozenset({forbidden_agent})) as sim:
        allowed = sim.agent_ids()[1]
        cid = (await sim.create_channel())["id"]
        await sim.subscribe(cid, [f"v2.users.{allowed}.activity"])
        for ignore in (None, False):
            response = await sim.subscribe(
                cid,
                [f"v2.users.{allowed}.presence", f"v2.users.{forbidden_agent}.presence"],
                ignore_errors=ignore,
            )
            assert response.status_code == 403
            assert response.json()["code"] == "missing.permissions"
        listed = await sim.topics(cid)
    assert listed == [f"v2.users.{allowed}.activity"]


async def test_ignore_errors_rejects_forbidden_topics_and_applies_the_rest() -> None:
    """With ignoreErrors=true a forbidden topic is Rejected with a reason; the others apply."""
    async with running_sim() as probe:
        forbidden_agent = probe.agent_ids()[0]
    reason = "Not allowed to see that user"
    settings = {"forbidden_agent_ids": frozenset({forbidden_agent}), "rejection_reason": reason}
    async with running_sim(**settings) as sim:
        allowed = sim.agent_ids()[1]
        cid = (await sim.create_channel())["id"]
        combined = f"v2.users.{forbidden_agent.upper()}?presence&routingStatus"
        response = await sim.subscribe(
            cid, [f"v2.users.{allowed}.presence", combined], ignore_errors=True
        )
        listed = await sim.topics(cid)
    assert response.status_code == 200
    entities = {e["id"]: e for e in response.json()["entities"]}
    assert entities[f"v2.users.{allowed}.presence"]["state"] == "Permitted"
    rejected = entities[combined]
    assert (rejected["state"], rejected["rejectionReason"]) == ("Rejected", reason)
    assert rejected["missingPermissions"]
    assert listed == [f"v2.users.{allowed}.presence"]


async def test_unknown_topics_are_rejected_or_refused_as_configured() -> None:
    """Malformed or unknown topics are Rejected (the rest applied), or fail the request with 400."""
    bad = ["v2.users.not-a-uuid.presence", "v2.routing.queues.x.members", "v2.users.", ""]
    async with running_sim() as sim:
        good = f"v2.users.{sim.agent_ids()[0]}.routingStatus"
        cid = (await sim.create_channel())["id"]
        response = await sim.subscribe(cid, [good, *bad])
        listed = await sim.topics(cid)
    async with running_sim(unknown_topic="error") as strict:
        cid = (await strict.create_channel())["id"]
        refused = await strict.subscribe(cid, [good, bad[0]])
        strict_listed = await strict.topics(cid)
    states = {e["id"]: e["state"] for e in response.json()["entities"]}
    assert states == {good: "Permitted", **dict.fromkeys(bad, "Rejected")}
    assert listed == [good]
    assert refused.status_code == 400
    assert strict_listed == []


async def test_topics_are_matched_case_insensitively_and_echoed_as_sent() -> None:
    """Suffix case does not matter, and the topic is listed exactly as it was subscribed."""
    async with running_sim() as sim:
        agent = sim.agent_ids()[0]
        cid = (await sim.create_channel())["id"]
        names = [f"v2.users.{agent}.ROUTINGSTATUS", f"V2.Users.{agent.upper()}?Presence&activity"]
        response = await sim.subscribe(cid, names)
    assert [(e["id"], e["state"]) for e in response.json()["entities"]] == [
        (names[0], "Permitted"),
        (names[1], "Permitted"),
    ]


async def test_channels_are_shared_by_the_clients_tokens() -> None:
    """Any live token of the channel's OAuth client may manage its subscriptions."""
    async with running_sim() as sim:
        cid = (await sim.create_channel())["id"]
        topic = f"v2.users.{sim.agent_ids()[0]}.presence"
        response = await sim.subscribe(cid, [topic], token=sim.new_token())
        listed = await sim.topics(cid)
    assert response.status_code == 200
    assert listed == [topic]


async def test_channels_die_with_their_token() -> None:
    """When the creating token dies, its channels go: notice, socket closed, HEAD 404."""
    async with running_sim() as sim:
        creator = sim.new_token()
        channel = await sim.create_channel(creator)
        survivor = await sim.create_channel()
        ws = await sim.connect(channel)
        sim.tokens.revoke(creator)
        notice = await ws.recv()
        await ws.wait_closed()
        statuses = (await sim.head(channel["id"]), await sim.head(survivor["id"]))
    assert notice == sim.settings.eviction_notice
    assert ws.close_code == 1000
    assert statuses == (404, 200)


async def test_channels_can_outlive_their_token() -> None:
    """With channels_die_with_token off, a channel survives its token for the client's others."""
    async with running_sim(channels_die_with_token=False) as sim:
        creator = sim.new_token()
        channel = await sim.create_channel(creator)
        sim.tokens.expire(creator)
        status = await sim.head(channel["id"])
    assert status == 200


async def test_expired_socket_gets_the_notice_and_is_closed() -> None:
    """expire_channel() sends the eviction notice, closes the socket and removes the channel."""
    async with running_sim() as sim:
        channel, ws = await sim.connected_channel([f"v2.users.{sim.agent_ids()[0]}.presence"])
        other = await sim.create_channel()
        assert sim.notifications.expire_channel(channel["id"]) == 1
        notice = await ws.recv()
        try:
            await ws.recv()
            raise AssertionError("the socket stayed open")
        except ConnectionClosed:
            pass
        head = await sim.head(channel["id"])
        subs = await sim.http.get(f"{CHANNELS}/{channel['id']}/subscriptions", headers=sim.auth())
        remaining = sim.notifications.channel_ids()
        assert sim.notifications.expire_channel() == 1
        none_left = sim.notifications.channel_ids()
    assert notice == '{"result":"404"}'
    assert (head, subs.status_code) == (404, 404)
    assert remaining == [other["id"]]
    assert none_left == []


async def test_channels_expire_on_time_unless_resubscribed() -> None:
    """A channel expires at `expires`; a resubscription before that moves `expires` forward."""
    # 100x simulated time: a 100 s lifetime passes in 1 s of real time.
    async with running_sim(channel_ttl_s=100, time_factor=100.0, eviction_notice=None) as sim:
        topic = f"v2.users.{sim.agent_ids()[0]}.presence"
        kept, ws = await sim.connected_channel([topic])
        lapsing = await sim.create_channel()
        first_expiry = _parse_ms(kept["expires"])
        await eventually(lambda: sim.clock.now_ms() >= first_expiry - 50_000, within=5)
        assert (await sim.subscribe(kept["id"], [topic])).status_code == 200
        listed = (await sim.http.get(CHANNELS, headers=sim.auth())).json()["entities"]
        moved = {c["id"]: _parse_ms(c["expires"]) for c in listed}[kept["id"]]
        await eventually(lambda: lapsing["id"] not in sim.notifications.channel_ids(), within=5)
        lapsed_head = await sim.head(lapsing["id"])
        kept_head = await sim.head(kept["id"])
        # With no eviction notice configured, the socket is just closed.
        await eventually(lambda: kept["id"] not in sim.notifications.channel_ids(), within=5)
        await ws.wait_closed()
    assert moved >= first_expiry + 40_000
    assert (lapsed_head, kept_head) == (404, 200)
    assert ws.close_code == 1000


async def test_subscribing_need_not_extend_expiry() -> None:
    """With subscribe_extends_expiry off, resubscribing leaves `expires` where it was."""
    async with running_sim(subscribe_extends_expiry=False, time_factor=50.0) as sim:
        channel = await sim.create_channel()
        await eventually(lambda: sim.clock.now_ms() > _parse_ms(channel["expires"]) - 86_399_000)
        await sim.subscribe(channel["id"], [f"v2.users.{sim.agent_ids()[0]}.presence"])
        listed = (await sim.http.get(CHANNELS, headers=sim.auth())).json()["entities"]
    assert listed[0]["expires"] == channel["expires"]


async def test_21st_channel_evicts_the_oldest_unconnected_one() -> None:
    """Creating a 21st channel succeeds and evicts the least recently used unconnected channel."""
    async with running_sim() as sim:
        first = await sim.create_channel()
        ws = await sim.connect(first)  # the oldest, but connected
        created = [await sim.create_channel() for _ in range(19)]
        # Using the second-oldest unconnected channel makes the third the least recently used.
        created_by = sim.clock.now_ms()
        await eventually(lambda: sim.clock.now_ms() > created_by)
        await sim.topics(created[0]["id"])
        extra = await sim.create_channel()
        ids = sim.notifications.channel_ids()
        await ws.close()
    assert len(ids) == 20
    assert created[1]["id"] not in ids
    assert {first["id"], created[0]["id"], extra["id"]} <= set(ids)


async def test_connected_channels_are_evicted_last_with_a_notice() -> None:
    """When every channel is connected, the least recently used one goes, notice first."""
    async with running_sim(max_channels=3) as sim:
        sockets = []
        for _ in range(3):
            channel = await sim.create_channel()
            sockets.append((channel, await sim.connect(channel)))
        extra = await sim.create_channel()
        oldest, ws = sockets[0]
        notice = await recv_json(ws)
        await ws.wait_closed()
        ids = sim.notifications.channel_ids()
        for _, other in sockets[1:]:
            await other.close()
    assert notice == {"result": "404"}
    assert ids == [sockets[1][0]["id"], sockets[2][0]["id"], extra["id"]]
    assert oldest["id"] not in ids


async def test_eviction_is_per_client() -> None:
    """One client's channels never evict another client's."""
    async with running_sim(max_channels=2) as sim:
        other = sim.new_token("other-client")
        theirs = [await sim.create_channel(other) for _ in range(2)]
        mine = [await sim.create_channel() for _ in range(3)]
        ids = sim.notifications.channel_ids()
    assert ids == [theirs[0]["id"], theirs[1]["id"], mine[1]["id"], mine[2]["id"]]
