"""Selectors: parsing the config/HTTP shape, durations, and which agents they match."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.model import Agent, Kind, Presence, RoutingStatus, StatusState
from monitor.core.selectors import (
    Selector,
    SelectorError,
    format_duration,
    parse_duration,
    presence_value,
    routing_value,
)

ADA = Agent(
    id="0d5c8f3e-1111-4a5b-9c1d-000000000001",
    name="Ada",
    email="Ada@Example.com",
    division_id="div-north",
    division_name="North",
    queue_ids=("q-sales", "q-support"),
)
BEN = Agent(id="0d5c8f3e-1111-4a5b-9c1d-000000000002", name="Ben", division_id="div-south")
NOW = 100_000_000
QUEUES = {"Sales": "q-sales", "Support": "q-support", "Billing": "q-billing"}
DIVISIONS = {"North": "div-north", "South": "div-south"}


def state(value: str, since_ms: int = NOW - 1000) -> StatusState:
    """A state that began at `since_ms`."""
    return StatusState(value, None, since_ms, since_ms)


def picks(selector: Selector, agent: Agent = ADA, **kwargs: Any) -> bool:
    """Whether `selector` matches `agent`, On Queue and IDLE for a second unless told otherwise."""
    presence = kwargs.pop("presence", state("ON_QUEUE"))
    routing = kwargs.pop("routing", state("IDLE"))
    return selector.matches(agent, presence, routing, kwargs.pop("now", NOW), **kwargs)


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("10h", 36000),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        ("90", 90),
        (" 45 ", 45),
        (90, 90),
        (2.5, 2.5),
        (0, 0),
    ],
)
def test_durations_parse_to_seconds(text: Any, seconds: float) -> None:
    """Durations accept unit suffixes, combinations, and plain numbers of seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "h", "10x", "-5", -1, True, None, "nan", float("inf"), "1h-30m", "²", [1]]
)
def test_bad_durations_are_refused_with_an_example(bad: Any) -> None:
    """Anything that is not a non-negative duration is a ValueError showing the accepted forms."""
    with pytest.raises(ValueError, match="'1h30m'"):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_duration_reads_back(seconds: int) -> None:
    """format_duration writes what parse_duration reads back to the same number of seconds."""
    assert parse_duration(format_duration(seconds)) == seconds


def test_format_duration_is_short() -> None:
    """Durations are written in their shortest natural form."""
    assert [format_duration(s) for s in (5400, 90, 36000, 0, 0.25)] == [
        "1h30m",
        "1m30s",
        "10h",
        "0s",
        "250ms",
    ]


# --- status names --------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["on queue", "On_Queue", "OnQueue", "ON_QUEUE", "onqueue"])
def test_presence_spellings_normalise(spelling: str) -> None:
    """Every usual spelling of a system presence means the same value."""
    assert presence_value(spelling) == "ON_QUEUE"


def test_routing_spellings_normalise() -> None:
    """Routing statuses accept the same spellings, PascalCase of the events API included."""
    assert {routing_value(s) for s in ("NotResponding", "not responding", "NOT_RESPONDING")} == {
        "NOT_RESPONDING"
    }


def test_unknown_status_names_list_the_choices() -> None:
    """A name that is no system presence or routing status is refused, listing the valid ones."""
    with pytest.raises(ValueError, match=r"'On Qeue'.*On Queue.*Break"):
        presence_value("On Qeue")
    with pytest.raises(ValueError, match="Not Responding"):
        routing_value("ON_QUEUE")


# --- from_mapping --------------------------------------------------------------------------------


def test_from_mapping_reads_every_key() -> None:
    """The documented shape fills every field, presence names normalised."""
    selector = Selector.from_mapping(
        {
            "agents": [ADA.id],
            "emails": ["ada@example.com"],
            "divisions": ["North"],
            "queues": ["Sales", "q-billing"],
            "presence": ["On Queue", "available"],
            "routing_status": ["IDLE"],
            "in_status_for": "10h",
            "in_status_kind": "routing",
        }
    )
    assert selector.agents == {ADA.id}
    assert selector.emails == {"ada@example.com"}
    assert selector.divisions == {"North"}
    assert selector.queues == {"Sales", "q-billing"}
    assert selector.presences == {"ON_QUEUE", "AVAILABLE"}
    assert selector.routing_statuses == {"IDLE"}
    assert selector.in_status_for_s == 36000
    assert selector.in_status_kind is Kind.ROUTING


def test_empty_mapping_selects_everyone() -> None:
    """{} is the selector of everyone, and matches any agent in any state."""
    selector = Selector.from_mapping({})
    assert selector.everyone
    assert selector.describe() == "everyone"
    assert picks(selector, BEN, presence=None, routing=None)


def test_a_single_name_stands_for_a_list() -> None:
    """A bare string is a list of one name."""
    assert Selector.from_mapping({"presence": "Break"}).presences == {"BREAK"}


def test_in_status_kind_follows_the_named_status() -> None:
    """Without in_status_kind, time in status counts routing when only routing is named, else
    presence."""
    assert (
        Selector.from_mapping({"routing_status": ["IDLE"], "in_status_for": 60}).in_status_kind
        is Kind.ROUTING
    )
    assert (
        Selector.from_mapping({"presence": ["Break"], "in_status_for": 60}).in_status_kind
        is Kind.PRESENCE
    )
    assert Selector.from_mapping({"in_status_for": 60}).in_status_kind is Kind.PRESENCE
    both = {"presence": ["On Queue"], "routing_status": ["IDLE"], "in_status_for": 60}
    assert Selector.from_mapping(both).in_status_kind is Kind.PRESENCE


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"queue": ["Sales"]}, "queue"),
        ({"agents": "  "}, "agents"),
        ({"agents": [""]}, "agents"),
        ({"agents": [42]}, "agents"),
        ({"emails": {"a": 1}}, "emails"),
        ({"divisions": []}, "divisions"),
        ({"presence": ["Lunch break"]}, "presence"),
        ({"routing_status": ["BUSY"]}, "routing_status"),
        ({"in_status_for": "soon"}, "in_status_for"),
        ({"in_status_for": -3}, "in_status_for"),
        ({"in_status_for": 60, "in_status_kind": "station"}, "in_status_kind"),
        ({"in_status_kind": "presence"}, "in_status_kind"),
    ],
)
def test_bad_selectors_name_the_key(data: dict[str, Any], key: str) -> None:
    """Every bad selector is a SelectorError (a ValueError) whose message starts with its key."""
    with pytest.raises(SelectorError) as caught:
        Selector.from_mapping(data)
    assert str(caught.value).startswith(f"{key}: ")
    assert isinstance(caught.value, ValueError)


def test_an_empty_list_is_refused_rather_than_selecting_everyone() -> None:
    """An empty list would silently select everyone; it is refused with the way to say that."""
    with pytest.raises(SelectorError, match="leave the key out"):
        Selector.from_mapping({"agents": []})


def test_a_non_mapping_is_refused() -> None:
    """A selector must be an object; a list is a SelectorError, not a crash."""
    with pytest.raises(SelectorError, match="object of selectors"):
        Selector.from_mapping(["Sales"])  # type: ignore[arg-type]


def test_constructor_validates_like_from_mapping() -> None:
    """Building a Selector directly normalises and validates the same way."""
    assert Selector(presences=frozenset({"on queue"})).presences == {"ON_QUEUE"}
    with pytest.raises(SelectorError, match=r"^presence: "):
        Selector(presences=frozenset({"Lunch"}))
    with pytest.raises(SelectorError, match=r"^in_status_for: "):
        Selector(in_status_for_s=float("nan"))


names = st.text(alphabet="abcXYZ -_0123", min_size=1, max_size=8).filter(str.strip)
mappings = st.fixed_dictionaries(
    {},
    optional={
        "agents": st.lists(names, min_size=1, max_size=3),
        "emails": st.lists(names, min_size=1, max_size=3),
        "divisions": st.lists(names, min_size=1, max_size=3),
        "queues": st.lists(names, min_size=1, max_size=3),
        "presence": st.lists(st.sampled_from(list(Presence)), min_size=1, max_size=3),
        "routing_status": st.lists(st.sampled_from(list(RoutingStatus)), min_size=1, max_size=3),
        "in_status_for": st.integers(min_value=0, max_value=10**6),
    },
)


@given(mappings)
def test_to_mapping_reads_back_as_an_equal_selector(data: dict[str, Any]) -> None:
    """A selector written with to_mapping parses back to an equal selector."""
    selector = Selector.from_mapping(data)
    assert Selector.from_mapping(selector.to_mapping()) == selector


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.none()
        | st.integers()
        | st.text()
        | st.lists(st.integers() | st.text(max_size=4), max_size=3),
        max_size=4,
    )
)
def test_arbitrary_input_is_a_selector_or_a_selector_error(data: dict[str, Any]) -> None:
    """Whatever the input, from_mapping returns a Selector or raises SelectorError, nothing else."""
    try:
        outcome = Selector.from_mapping(data).describe()
    except SelectorError as exc:
        outcome = str(exc)
    assert outcome


# --- matching ------------------------------------------------------------------------------------


def test_agents_and_emails_match_case_insensitively() -> None:
    """Agent ids and emails match whatever their case."""
    assert picks(Selector(agents=frozenset({ADA.id.upper()})))
    assert not picks(Selector(agents=frozenset({BEN.id})))
    assert picks(Selector(emails=frozenset({"ada@EXAMPLE.com"})))
    assert not picks(Selector(emails=frozenset({"ada@example.com"})), BEN)


def test_divisions_match_by_name_or_id() -> None:
    """A division is named by its name or its id, as the agent carries both."""
    assert picks(Selector(divisions=frozenset({"north"})))
    assert picks(Selector(divisions=frozenset({"div-north"})))
    assert not picks(Selector(divisions=frozenset({"South"})))


def test_division_names_resolve_for_agents_without_a_division_name() -> None:
    """An agent whose roster entry lacks the division name is found through the name table."""
    selector = Selector(divisions=frozenset({"South"}))
    assert not picks(selector, BEN)
    assert picks(selector, BEN, division_ids_by_name=DIVISIONS)
    assert picks(selector.resolve(division_ids_by_name=DIVISIONS), BEN)


def test_queue_ids_match_directly_and_names_need_the_table() -> None:
    """Queue ids match the agent's queues; queue names match once resolved through the table."""
    assert picks(Selector(queues=frozenset({"q-support"})))
    by_name = Selector(queues=frozenset({"sales"}))
    assert not picks(by_name)
    assert picks(by_name, queue_ids_by_name=QUEUES)
    resolved = by_name.resolve(QUEUES)
    assert picks(resolved)
    assert not picks(resolved, BEN)
    assert not picks(Selector(queues=frozenset({"Billing"})), queue_ids_by_name=QUEUES)


def test_resolving_keeps_the_names_for_describe() -> None:
    """A resolved selector still describes itself by the names it was given."""
    selector = Selector(queues=frozenset({"Sales"}))
    assert selector.resolve(QUEUES).describe() == selector.describe() == "queues=Sales"


def test_unknown_names_are_reported() -> None:
    """Queue and division entries that are neither a known name nor id are listed."""
    selector = Selector(
        queues=frozenset({"Sales", "q-billing", "Salse"}), divisions=frozenset({"West"})
    )
    assert selector.unknown_names(QUEUES, DIVISIONS) == ["queue 'Salse'", "division 'West'"]


def test_presence_and_routing_match_the_current_values() -> None:
    """Presence and routing statuses match the current values; an unknown state never matches."""
    on_queue = Selector(presences=frozenset({"On Queue"}))
    assert picks(on_queue)
    assert not picks(on_queue, presence=state("BREAK"))
    assert not picks(on_queue, presence=None)
    idle = Selector(routing_statuses=frozenset({"IDLE", "INTERACTING"}))
    assert picks(idle, routing=state("INTERACTING"))
    assert not picks(idle, routing=state("NOT_RESPONDING"))
    assert not picks(idle, routing=None)


def test_on_queue_for_more_than_ten_hours() -> None:
    """ "On Queue for more than 10 hours" matches from exactly 10 hours in the presence."""
    selector = Selector.from_mapping({"presence": ["On Queue"], "in_status_for": "10h"})
    began = NOW - 36_000_000
    assert picks(selector, presence=state("ON_QUEUE", began))
    assert not picks(selector, presence=state("ON_QUEUE", began + 1))
    assert not picks(selector, presence=state("AVAILABLE", began - 1))


def test_time_in_status_counts_the_chosen_kind() -> None:
    """in_status_kind decides whether presence or routing time counts."""
    selector = Selector(in_status_for_s=60, in_status_kind=Kind.ROUTING)
    assert picks(selector, presence=state("ON_QUEUE", NOW - 1), routing=state("IDLE", NOW - 60_000))
    assert not picks(
        selector, presence=state("ON_QUEUE", NOW - 600_000), routing=state("IDLE", NOW - 59_999)
    )
    assert not picks(selector, routing=None)


def test_fields_combine_with_and_values_with_or() -> None:
    """Fields are ANDed, values within one field ORed."""
    selector = Selector(
        queues=frozenset({"q-sales", "q-other"}), presences=frozenset({"BREAK", "MEAL"})
    )
    assert picks(selector, presence=state("MEAL"))
    assert picks(selector, presence=state("BREAK"))
    assert not picks(selector, presence=state("ON_QUEUE"))
    assert not picks(selector, BEN, presence=state("MEAL"))


def test_describe_is_stable_and_complete() -> None:
    """describe() lists every constraint in a fixed order, for logs and audit rows."""
    selector = Selector.from_mapping(
        {"presence": ["On Queue"], "queues": ["Support", "Sales"], "in_status_for": 5400}
    )
    assert (
        selector.describe() == "queues=Sales,Support; presence=ON_QUEUE; in presence for >= 1h30m"
    )


def test_resolving_again_replaces_the_earlier_ids() -> None:
    """A queue renamed or removed since the last resolution no longer matches by its old id."""
    selector = Selector(queues=frozenset({"Sales"})).resolve(QUEUES)
    moved = selector.resolve({"Sales": "q-new-sales"})
    assert not picks(moved)
    assert picks(moved, Agent(id="x", name="X", queue_ids=("q-new-sales",)))
