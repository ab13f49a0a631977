"""Topic names, and the planner that shards agents over channels within Genesys's limits.

Limits (GENESYS.md 1.4): at most 1,000 topics a channel, at most 20 channels an OAuth client
(a 21st channel silently evicts the oldest, so we must never open one). An agent costs one topic
in the combined form `v2.users.{id}?presence&routingStatus`, or two as separate topics. Whether a
combined topic counts as one toward the 1,000 is partly UNCONFIRMED (2.8); `Limits` takes the
cost per agent as a number, so the pool can choose.

The planner is pure: it maps the current assignment (which agents are on which channel slot) and
the new roster to a new assignment. It keeps every agent that is still on the roster where it is,
so a roster change touches as few channels as possible, and `diff()` tells the pool per slot what
to subscribe, unsubscribe, open and close.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from monitor.errors import CapacityError

__all__ = [
    "Assignment",
    "ChannelSlot",
    "Limits",
    "SlotChange",
    "agent_of",
    "combined_topic",
    "diff",
    "is_agent_id",
    "plan",
    "presence_topic",
    "routing_topic",
    "slot_topics",
    "topics_for",
]

TOPICS_PER_CHANNEL = 1000
CHANNELS_PER_CLIENT = 20

_USERS = "v2.users."
_AGENT_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch


def is_agent_id(text: str) -> bool:
    """Whether `text` has the shape of a Genesys user id (a UUID, either case)."""
    return _AGENT_ID(text) is not None


def presence_topic(agent_id: str) -> str:
    """The agent's presence topic."""
    return f"v2.users.{agent_id}.presence"


def routing_topic(agent_id: str) -> str:
    """The agent's routing-status topic (camelCase suffix, as Genesys spells it)."""
    return f"v2.users.{agent_id}.routingStatus"


def combined_topic(agent_id: str) -> str:
    """Presence and routing status in one topic; frames still arrive under the separate names."""
    return f"v2.users.{agent_id}?presence&routingStatus"


def topics_for(agent_id: str, combined: bool) -> tuple[str, ...]:
    """The topics to subscribe for one agent."""
    if combined:
        return (combined_topic(agent_id),)
    return (presence_topic(agent_id), routing_topic(agent_id))


def agent_of(topic: str) -> str | None:
    """The (lower-cased) agent id of any `v2.users.{id}.x` or `v2.users.{id}?x&y` topic, else None.

    Used to map topics that a subscription rejected back to the agents they belong to.
    """
    if topic[: len(_USERS)].lower() != _USERS:
        return None
    rest = topic[len(_USERS) :]
    ends = [i for i in (rest.find("."), rest.find("?")) if i >= 0]
    if not ends:
        return None
    candidate = rest[: min(ends)]
    if _AGENT_ID(candidate) is None or len(rest) == len(candidate) + 1:
        return None
    return candidate.lower()


class ChannelSlot(NamedTuple):
    """A place for one channel: the OAuth client (pool) and the slot within its 20."""

    client: int
    number: int


Assignment = Mapping[ChannelSlot, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Limits:
    """How many agents fit: per channel, per OAuth client, overall."""

    clients: int
    topics_per_agent: int = 1
    channels_per_client: int = CHANNELS_PER_CLIENT
    topics_per_channel: int = TOPICS_PER_CHANNEL

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError("at least one OAuth client is needed")
        if self.channels_per_client < 1 or self.topics_per_channel < 1:
            raise ValueError("channels_per_client and topics_per_channel must be positive")
        if not 1 <= self.topics_per_agent <= self.topics_per_channel:
            raise ValueError("topics_per_agent must be between 1 and topics_per_channel")

    @classmethod
    def for_topics(cls, clients: int, combined: bool) -> Limits:
        """Genesys's limits for `clients` OAuth clients, with combined or separate topics."""
        return cls(clients=clients, topics_per_agent=1 if combined else 2)

    @property
    def agents_per_channel(self) -> int:
        return self.topics_per_channel // self.topics_per_agent

    @property
    def agents_per_client(self) -> int:
        return self.channels_per_client * self.agents_per_channel

    @property
    def capacity(self) -> int:
        """How many agents all clients together can watch."""
        return self.clients * self.agents_per_client

    def clients_needed(self, agents: int) -> int:
        """How many OAuth clients `agents` agents need (at least one)."""
        return max(1, -(-agents // self.agents_per_client))

    def valid(self, slot: ChannelSlot) -> bool:
        return 0 <= slot.client < self.clients and 0 <= slot.number < self.channels_per_client


def plan(
    current: Mapping[ChannelSlot, Iterable[str]], roster: Iterable[str], limits: Limits
) -> dict[ChannelSlot, frozenset[str]]:
    """The new assignment of the roster's agents to channel slots.

    - Agents still on the roster stay in their slot; departed agents are removed.
    - New agents first fill free room in existing slots (largest room first, so that as few
      channels as possible change), then go to new slots, opened on the client that has the fewest
      slots and spread evenly over as few new slots as they need.
    - Slots left without agents are dropped (the pool closes their channels).
    - A `current` that breaks `limits` (e.g. after the limits changed) is repaired: agents in
      slots that no longer exist, beyond a slot's room, or placed twice are placed again.

    Deterministic whatever the iteration order of its inputs. Raises CapacityError when the roster
    does not fit.
    """
    wanted = set(roster)
    if len(wanted) > limits.capacity:
        raise CapacityError(len(wanted), limits.capacity, limits.clients_needed(len(wanted)))
    room = limits.agents_per_channel

    slots: dict[ChannelSlot, list[str]] = {}
    placed: set[str] = set()
    for key in sorted(current):
        slot = ChannelSlot(*key)
        if not limits.valid(slot):
            continue
        # An emptied slot is kept until the end: its channel still exists and can take new agents.
        members = slots[slot] = []
        for agent in sorted(current[key]):
            if agent in wanted and agent not in placed and len(members) < room:
                members.append(agent)
                placed.add(agent)

    unplaced = sorted(wanted - placed)
    if unplaced:
        # Largest room first: covering the newcomers with the fewest slots changes fewest channels.
        for slot in sorted(slots, key=lambda s: (len(slots[s]), s)):
            take = room - len(slots[slot])
            if take <= 0:
                continue
            slots[slot].extend(unplaced[:take])
            del unplaced[:take]
            if not unplaced:
                break
    if unplaced:
        _open_slots(slots, unplaced, limits)
    return {slot: frozenset(members) for slot, members in slots.items() if members}


def _open_slots(slots: dict[ChannelSlot, list[str]], agents: list[str], limits: Limits) -> None:
    count = -(-len(agents) // limits.agents_per_channel)
    per_client = [0] * limits.clients
    taken: set[ChannelSlot] = set(slots)
    for slot in slots:
        per_client[slot.client] += 1
    new: list[ChannelSlot] = []
    for _ in range(count):
        # Spreading channels over clients spreads the per-token rate limit and the damage a
        # revoked token does. The capacity check guarantees a client with a free slot exists.
        client = min(
            (c for c in range(limits.clients) if per_client[c] < limits.channels_per_client),
            key=lambda c: (per_client[c], c),
        )
        index = next(i for i in range(limits.channels_per_client) if (client, i) not in taken)
        slot = ChannelSlot(client, index)
        taken.add(slot)
        per_client[client] += 1
        new.append(slot)
    # Even shares leave every new channel some room for agents who join later.
    base, extra = divmod(len(agents), count)
    start = 0
    for position, slot in enumerate(sorted(new)):
        size = base + (1 if position < extra else 0)
        slots[slot] = agents[start : start + size]
        start += size


@dataclass(frozen=True, slots=True)
class SlotChange:
    """What changes on one channel slot between two assignments.

    `opened`: the slot is new (create a channel and subscribe `added`). `closed`: the slot is gone
    (close its channel). Otherwise the channel's subscription must gain `added` and lose `removed`.
    """

    slot: ChannelSlot
    added: frozenset[str]
    removed: frozenset[str]
    opened: bool
    closed: bool


def diff(old: Assignment, new: Assignment) -> tuple[SlotChange, ...]:
    """The slots whose agents differ between `old` and `new`, in slot order."""
    changes = []
    empty: frozenset[str] = frozenset()
    for slot in sorted(set(old) | set(new)):
        before = old.get(slot, empty)
        after = new.get(slot, empty)
        if before == after and (slot in old) == (slot in new):
            continue
        changes.append(
            SlotChange(
                slot=slot,
                added=after - before,
                removed=before - after,
                opened=slot not in old,
                closed=slot not in new,
            )
        )
    return tuple(changes)


def slot_topics(agents: Iterable[str], combined: bool) -> list[str]:
    """The full, sorted topic list of one channel, as a subscription PUT replaces it."""
    return [topic for agent in sorted(agents) for topic in topics_for(agent, combined)]
