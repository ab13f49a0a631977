"""The simulated org: its agents, divisions, queues and presence definitions, the current presence
and routing status of every agent, and the ground-truth log of every change made to them.

Everything that changes an agent's state (the behaviour model, the REST API, the admin API, a
test) goes through `Org.set_presence` and `Org.set_routing`. They apply Genesys's coupling of the
two (going On Queue makes routing IDLE, leaving makes it OFF_QUEUE), append to the ground truth,
and tell the listeners (the notification hub) so frames can be pushed, whether or not any channel
is there to deliver them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.clock import Clock
from monitor.core.model import Kind, Presence, RoutingStatus
from monitor.sim.settings import SimSettings

# Well-known id of the Available system definition (from the official presence guide); the other
# system definition ids are generated per org, as Genesys does not document them.
AVAILABLE_DEFINITION_ID = "6a3af858-942f-489d-9700-5f9bcdcdae9b"

_SYSTEM_LABELS = {
    Presence.AVAILABLE: "Available",
    Presence.AWAY: "Away",
    Presence.BUSY: "Busy",
    Presence.OFFLINE: "Offline",
    Presence.IDLE: "Idle",
    Presence.ON_QUEUE: "On Queue",
    Presence.MEAL: "Meal",
    Presence.TRAINING: "Training",
    Presence.MEETING: "Meeting",
    Presence.BREAK: "Break",
}
# Secondary presences an org typically defines, with labels in two locales.
_CUSTOM_DEFINITIONS = (
    (Presence.BREAK, "Coffee", "Kaffeepause"),
    (Presence.MEAL, "Lunch", "Mittagessen"),
    (Presence.BUSY, "Back office", "Backoffice"),
    (Presence.AWAY, "Coaching", "Coaching"),
    (Presence.TRAINING, "E-learning", "E-Learning"),
)
_FIRST = [
    "Ada",
    "Alan",
    "Anna",
    "Ben",
    "Carla",
    "Chen",
    "Dana",
    "Elif",
    "Emma",
    "Femi",
    "Grace",
    "Hana",
    "Ivan",
    "Jon",
    "Kai",
    "Lea",
    "Liam",
    "Maya",
    "Noor",
    "Omar",
    "Pia",
    "Raj",
    "Rosa",
    "Sam",
    "Sara",
    "Tom",
    "Uma",
    "Vera",
    "Yuki",
    "Zoe",
]
_LAST = [
    "Adams",
    "Berg",
    "Costa",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jones",
    "Kim",
    "Lopez",
    "Meyer",
    "Nowak",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Young",
    "Zimmer",
]
_DEPARTMENTS = ("Sales", "Support", "Billing", "Retention")


@dataclass(slots=True)
class PresenceDefinition:
    """A presence definition: one per system presence, plus the org's secondary ones."""

    id: str
    system_presence: Presence
    labels: dict[str, str]
    primary: bool  # a system definition (type System) rather than an org-defined one (type User)
    deactivated: bool = False

    @property
    def label(self) -> str:
        return self.labels.get("en_US", next(iter(self.labels.values()), ""))


@dataclass(slots=True)
class Division:
    id: str
    name: str


@dataclass(slots=True)
class Queue:
    id: str
    name: str
    division_id: str
    member_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SimAgent:
    """A user of the simulated org with its current presence and routing status."""

    id: str
    name: str
    email: str
    title: str
    department: str
    division_id: str
    manager_id: str | None
    queue_ids: list[str]
    presence_definition_id: str
    presence_modified_ms: int
    routing_status: RoutingStatus
    routing_start_ms: int
    presence_message: str = ""
    state: str = "active"  # active | inactive | deleted
    version: int = 1


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the ground truth: an agent's presence or routing status was set.

    `previous_value`/`previous_definition_id` let a reader tell a real change of state from an
    update that only touched the presence message.
    """

    seq: int
    agent_id: str
    kind: Kind
    value: str
    definition_id: str | None
    event_ms: int
    previous_value: str
    previous_definition_id: str | None
    cause: str

    @property
    def is_transition(self) -> bool:
        return (self.value, self.definition_id) != (
            self.previous_value,
            self.previous_definition_id,
        )


Listener = Callable[[Change], None]


class Org:
    """The simulated org. Deterministic for `settings.seed`."""

    def __init__(self, settings: SimSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = random.Random(settings.seed)
        self.id = self._uuid()
        self.divisions: dict[str, Division] = {}
        self.queues: dict[str, Queue] = {}
        self.definitions: dict[str, PresenceDefinition] = {}
        self.agents: dict[str, SimAgent] = {}
        self.truth: list[Change] = []
        # When each agent's presence and routing status was read over REST: with the truth, this
        # tells which changes a client could have learnt from a snapshot.
        self.reads: dict[tuple[str, Kind], list[int]] = {}
        self._listeners: list[Listener] = []
        self._system: dict[Presence, PresenceDefinition] = {}
        self._team_leads: list[str] = []
        # Bumped on every hire and every user-state change: lets readers cache what depends on
        # the roster (its sort order, search results) without watching every agent.
        self.roster_version = 0
        self._build()

    # --- construction ---------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _build(self) -> None:
        for presence, label in _SYSTEM_LABELS.items():
            def_id = AVAILABLE_DEFINITION_ID if presence is Presence.AVAILABLE else self._uuid()
            definition = PresenceDefinition(def_id, presence, {"en_US": label}, primary=True)
            self.definitions[def_id] = definition
            self._system[presence] = definition
        if self.settings.custom_definitions:
            for presence, english, german in _CUSTOM_DEFINITIONS:
                def_id = self._uuid()
                self.definitions[def_id] = PresenceDefinition(
                    def_id, presence, {"en_US": english, "de_DE": german}, primary=False
                )
        for n in range(max(1, self.settings.divisions)):
            div = Division(self._uuid(), "Home" if n == 0 else f"Division {n + 1}")
            self.divisions[div.id] = div
        division_ids = list(self.divisions)
        for n in range(max(1, self.settings.queues)):
            queue = Queue(self._uuid(), f"Queue {n + 1:02d}", division_ids[n % len(division_ids)])
            self.queues[queue.id] = queue
        for _ in range(self.settings.agents):
            self.add_agent()

    def add_agent(self, name: str | None = None) -> SimAgent:
        """Hire an agent: active, Offline and off queue, in one to three queues."""
        n = len(self.agents)
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        name = name or f"{first} {last} {n + 1:05d}"
        email = name.lower().replace(" ", ".") + "@example.com"
        division_id = self.rng.choice(list(self.divisions))
        managers = self._team_leads
        title = "Team Lead" if n % 15 == 0 else "Agent"
        queue_ids = self.rng.sample(
            list(self.queues), k=min(len(self.queues), self.rng.randint(1, 3))
        )
        now = self.clock.now_ms()
        agent = SimAgent(
            id=self._uuid(),
            name=name,
            email=email,
            title=title,
            department=self.rng.choice(_DEPARTMENTS),
            division_id=division_id,
            manager_id=self.rng.choice(managers) if managers else None,
            queue_ids=queue_ids,
            presence_definition_id=self._system[Presence.OFFLINE].id,
            presence_modified_ms=now,
            routing_status=RoutingStatus.OFF_QUEUE,
            routing_start_ms=now,
        )
        self.agents[agent.id] = agent
        self.roster_version += 1
        if title == "Team Lead":
            self._team_leads.append(agent.id)
        for queue_id in queue_ids:
            self.queues[queue_id].member_ids.append(agent.id)
        return agent

    # --- reading --------------------------------------------------------------------------------

    def agent(self, agent_id: str) -> SimAgent:
        """The agent with this id; KeyError when there is none."""
        return self.agents[agent_id]

    def system_definition(self, presence: Presence) -> PresenceDefinition:
        return self._system[presence]

    def definition_of(self, agent: SimAgent) -> PresenceDefinition:
        return self.definitions[agent.presence_definition_id]

    def presence_of(self, agent: SimAgent) -> Presence:
        return self.definitions[agent.presence_definition_id].system_presence

    def note_read(self, agent_id: str, kind: Kind) -> None:
        """An API answer showed this agent's current presence or routing status."""
        self.reads.setdefault((agent_id, kind), []).append(self.clock.now_ms())

    # --- listening ------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every change from now on; returns a function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # --- changing -------------------------------------------------------------------------------

    def set_presence(
        self,
        agent_id: str,
        definition_id: str,
        *,
        cause: str,
        message: str | None = None,
        at_ms: int | None = None,
    ) -> list[Change]:
        """Set an agent's presence, coupling the routing status as Genesys does.

        Going On Queue makes an OFF_QUEUE agent IDLE; leaving On Queue makes the agent OFF_QUEUE.
        Setting the same definition and message again changes nothing and emits nothing.
        `at_ms` records the change at that time instead of the clock's: the behaviour model
        applies each planned action at its due time, also when it runs ahead of the clock.
        Raises KeyError for an unknown agent or definition, ValueError for a deactivated one.
        """
        agent = self.agents[agent_id]
        definition = self.definitions[definition_id]
        if definition.deactivated:
            raise ValueError(f"presence definition {definition_id} is deactivated")
        new_message = agent.presence_message if message is None else message
        if definition_id == agent.presence_definition_id and new_message == agent.presence_message:
            # Setting On Queue again puts an agent whose routing status says off queue back in
            # the queue (the coupling, re-applied); otherwise nothing changes.
            if (
                definition.system_presence is Presence.ON_QUEUE
                and agent.routing_status is RoutingStatus.OFF_QUEUE
            ):
                return self.set_routing(agent_id, RoutingStatus.IDLE, cause=cause, at_ms=at_ms)
            return []
        was_on_queue = self.presence_of(agent) is Presence.ON_QUEUE
        previous = self.definition_of(agent)
        agent.presence_definition_id = definition_id
        agent.presence_message = new_message
        agent.presence_modified_ms = self._next_ms(agent.presence_modified_ms, at_ms)
        changes = [
            self._record(
                agent,
                Kind.PRESENCE,
                definition.system_presence,
                definition_id,
                agent.presence_modified_ms,
                previous.system_presence,
                previous.id,
                cause,
            )
        ]
        on_queue = definition.system_presence is Presence.ON_QUEUE
        if on_queue and not was_on_queue and agent.routing_status is RoutingStatus.OFF_QUEUE:
            changes += self.set_routing(agent_id, RoutingStatus.IDLE, cause=cause, at_ms=at_ms)
        elif was_on_queue and not on_queue and agent.routing_status is not RoutingStatus.OFF_QUEUE:
            changes += self.set_routing(agent_id, RoutingStatus.OFF_QUEUE, cause=cause, at_ms=at_ms)
        return changes

    def set_system_presence(
        self, agent_id: str, presence: Presence, *, cause: str, at_ms: int | None = None
    ) -> list[Change]:
        """Set an agent's presence to the system definition of `presence`."""
        return self.set_presence(agent_id, self._system[presence].id, cause=cause, at_ms=at_ms)

    def set_routing(
        self,
        agent_id: str,
        status: RoutingStatus,
        *,
        cause: str,
        force: bool = False,
        at_ms: int | None = None,
    ) -> list[Change]:
        """Set an agent's routing status.

        Only an On Queue agent can have a routing status other than OFF_QUEUE; `force` allows the
        inconsistent states that real orgs show now and then (On Queue but OFF_QUEUE, or the
        reverse), for the stuck-agent rules to find. Raises ValueError otherwise.
        """
        agent = self.agents[agent_id]
        on_queue = self.presence_of(agent) is Presence.ON_QUEUE
        if not force and not on_queue and status is not RoutingStatus.OFF_QUEUE:
            raise ValueError(f"agent {agent_id} is not On Queue and cannot be {status}")
        if status is agent.routing_status:
            return []
        previous = agent.routing_status
        agent.routing_status = status
        agent.routing_start_ms = self._next_ms(agent.routing_start_ms, at_ms)
        return [
            self._record(
                agent, Kind.ROUTING, status, None, agent.routing_start_ms, previous, None, cause
            )
        ]

    def set_state(self, agent_id: str, state: str) -> None:
        """Activate, deactivate or delete a user (a roster change; no presence event)."""
        if state not in ("active", "inactive", "deleted"):
            raise ValueError(f"unknown user state {state!r}")
        agent = self.agents[agent_id]
        agent.state = state
        agent.version += 1
        self.roster_version += 1

    def _next_ms(self, last_ms: int, at_ms: int | None = None) -> int:
        # Event times of one agent and kind strictly increase, as they would on a real clock with
        # finer resolution; two changes in the same millisecond would otherwise be unordered.
        return max(self.clock.now_ms() if at_ms is None else at_ms, last_ms + 1)

    def _record(
        self,
        agent: SimAgent,
        kind: Kind,
        value: str,
        definition_id: str | None,
        event_ms: int,
        previous_value: str,
        previous_definition_id: str | None,
        cause: str,
    ) -> Change:
        agent.version += 1
        change = Change(
            seq=len(self.truth),
            agent_id=agent.id,
            kind=kind,
            value=str(value),
            definition_id=definition_id,
            event_ms=event_ms,
            previous_value=str(previous_value),
            previous_definition_id=previous_definition_id,
            cause=cause,
        )
        self.truth.append(change)
        for listener in list(self._listeners):
            listener(change)
        return change
