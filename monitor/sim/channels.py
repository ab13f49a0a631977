"""The simulator's notification channels: who owns them, what they are subscribed to, when they
expire, and which socket is connected to each.

Events are fanned out through `index`, agent id -> the channels subscribed to any of that agent's
topics, and each channel's `routes`, agent id -> the topic names to deliver each kind of event
under. Both are rebuilt when subscriptions change, so that a change costs dictionary lookups only.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from monitor.clock import Clock
from monitor.sim.settings import SimSettings
from monitor.sim.streaming import Socket
from monitor.sim.tokens import Token
from monitor.sim.topics import ACTIVITY, PRESENCE, ROUTING_STATUS, UserTopic

_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(slots=True)
class Route:
    """The names under which one channel receives one agent's events, per event type."""

    presence: tuple[str, ...] = ()
    routing: tuple[str, ...] = ()
    activity: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class SimChannel:
    """A notification channel of one OAuth client, made by one of its tokens."""

    id: str
    client_id: str
    token: str  # the value of the token that created it
    created_ms: int
    expires_ms: int
    last_used_ms: int
    topics: dict[str, UserTopic] = field(default_factory=dict)  # by name as subscribed
    routes: dict[str, Route] = field(default_factory=dict)  # by agent id
    socket: Socket | None = None

    @property
    def connected(self) -> bool:
        return self.socket is not None and not self.socket.closing


class Channels:
    """Every live channel, by id, with the agent index used to fan events out."""

    def __init__(
        self,
        settings: SimSettings,
        clock: Clock,
        rng: random.Random,
        on_expiry_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._rng = rng
        self._on_expiry_change = on_expiry_change
        self._channels: dict[str, SimChannel] = {}
        self.index: dict[str, dict[str, SimChannel]] = {}

    # --- lookup ---------------------------------------------------------------------------------

    def get(self, channel_id: str) -> SimChannel | None:
        """The live channel with this id; an expired one is removed on the way and is None."""
        channel = self._channels.get(channel_id)
        if channel is not None and self._clock.now_ms() >= channel.expires_ms:
            self.remove(channel, "channel expired")
            return None
        return channel

    def owned(self, channel_id: str, client_id: str) -> SimChannel | None:
        """The live channel with this id if it belongs to `client_id`; None otherwise."""
        channel = self.get(channel_id)
        return channel if channel is not None and channel.client_id == client_id else None

    def of_client(self, client_id: str) -> list[SimChannel]:
        """The client's live channels, oldest first."""
        self.expire_due()
        return [c for c in self._channels.values() if c.client_id == client_id]

    def all(self) -> list[SimChannel]:
        """Every live channel, oldest first."""
        # The expiry timer may lag a little behind the clock; nothing expired is ever listed.
        self.expire_due()
        return list(self._channels.values())

    def next_expiry_ms(self) -> int | None:
        return min((c.expires_ms for c in self._channels.values()), default=None)

    # --- life -----------------------------------------------------------------------------------

    def create(self, token: Token) -> tuple[SimChannel, list[SimChannel]]:
        """A new channel for the token's client, and the channels evicted to make room for it.

        Over the limit, the client's channel used least recently goes, preferring channels
        without a connected socket, as the SDK documents for the 21st channel.
        """
        now = self._clock.now_ms()
        evicted: list[SimChannel] = []
        mine = self.of_client(token.client_id)
        while mine and len(mine) >= self._settings.max_channels:
            victim = min(mine, key=lambda c: (c.connected, c.last_used_ms, c.created_ms))
            mine.remove(victim)
            self.remove(victim, "channel evicted by a newer channel")
            evicted.append(victim)
        channel = SimChannel(
            id=self._new_id(),
            client_id=token.client_id,
            token=token.value,
            created_ms=now,
            expires_ms=now + self._settings.channel_ttl_s * 1000,
            last_used_ms=now,
        )
        self._channels[channel.id] = channel
        self._on_expiry_change()
        return channel, evicted

    def _new_id(self) -> str:
        while True:
            suffix = "".join(self._rng.choices(_ID_ALPHABET, k=26))
            channel_id = f"streaming-{self._rng.randint(0, 9)}-{suffix}"
            if channel_id not in self._channels:
                return channel_id

    def remove(self, channel: SimChannel, reason: str) -> bool:
        """Remove a channel: its socket gets the eviction notice and is closed."""
        if self._channels.get(channel.id) is not channel:
            return False
        del self._channels[channel.id]
        self._unindex(channel, channel.topics.values())
        channel.topics = {}
        channel.routes = {}
        if channel.socket is not None:
            channel.socket.finish(self._settings.eviction_notice, reason=reason)
            channel.socket = None
        return True

    def expire_due(self) -> int:
        """Remove every channel whose expiry has passed; returns how many."""
        now = self._clock.now_ms()
        due = [c for c in self._channels.values() if now >= c.expires_ms]
        for channel in due:
            self.remove(channel, "channel expired")
        return len(due)

    def touch(self, channel: SimChannel) -> None:
        channel.last_used_ms = self._clock.now_ms()

    def extend(self, channel: SimChannel) -> None:
        """Move the expiry to a full lifetime from now (resubscribing keeps a channel alive)."""
        channel.expires_ms = self._clock.now_ms() + self._settings.channel_ttl_s * 1000
        self._on_expiry_change()

    # --- sockets --------------------------------------------------------------------------------

    def attach(self, channel_id: str, socket: Socket) -> bool:
        """Connect a socket to its channel; an earlier socket of the channel is closed."""
        channel = self.get(channel_id)
        if channel is None:
            return False
        previous = channel.socket
        channel.socket = socket
        self.touch(channel)
        if previous is not None:
            previous.finish(reason="another socket connected to this channel")
        return True

    def detach(self, channel_id: str, socket: Socket) -> None:
        channel = self._channels.get(channel_id)
        if channel is not None and channel.socket is socket:
            channel.socket = None
            self.touch(channel)

    # --- subscriptions --------------------------------------------------------------------------

    def set_topics(self, channel: SimChannel, topics: dict[str, UserTopic]) -> None:
        """Replace the channel's subscriptions (already validated) and re-index its agents."""
        old = channel.topics
        self._unindex(channel, old.values())
        channel.topics = topics
        channel.routes = {}
        by_agent: dict[str, list[UserTopic]] = {}
        for topic in topics.values():
            by_agent.setdefault(topic.agent_id, []).append(topic)
        for agent_id, agent_topics in by_agent.items():
            channel.routes[agent_id] = _route(agent_topics)
            self.index.setdefault(agent_id, {})[channel.id] = channel

    def _unindex(self, channel: SimChannel, topics: Iterable[UserTopic]) -> None:
        for topic in topics:
            subscribed = self.index.get(topic.agent_id)
            if subscribed is not None:
                subscribed.pop(channel.id, None)
                if not subscribed:
                    del self.index[topic.agent_id]


def _route(topics: list[UserTopic]) -> Route:
    names: dict[str, list[str]] = {PRESENCE: [], ROUTING_STATUS: [], ACTIVITY: []}
    seen: set[str] = set()
    for topic in topics:
        for suffix, name in topic.parts:
            # `v2.users.X.presence` and `v2.users.X?presence` name the same events; a channel
            # receives each event once per distinct name, whatever case it was subscribed in.
            if name.lower() not in seen:
                seen.add(name.lower())
                names[suffix].append(name)
    return Route(tuple(names[PRESENCE]), tuple(names[ROUTING_STATUS]), tuple(names[ACTIVITY]))
