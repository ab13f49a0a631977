"""Presence targets named the way people name them: system presences, labels, ids, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.core.model import PresenceDefinitionInfo
from monitor.core.presence_names import PresenceNameError, PresenceNames, resolve


def system(presence: str, label: str, ident: str | None = None) -> PresenceDefinitionInfo:
    """The system definition of a presence."""
    return PresenceDefinitionInfo(
        ident or f"sys-{presence.lower()}", presence, {"en_US": label}, True
    )


AVAILABLE = PresenceDefinitionInfo(
    "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "AVAILABLE",
    {"en_US": "Available", "de_DE": "Verfügbar"},
    True,
)
ON_QUEUE = system("ON_QUEUE", "On Queue")
OFFLINE = system("OFFLINE", "Offline")
BREAK = system("BREAK", "Break")
MEAL = system("MEAL", "Meal")
COFFEE = PresenceDefinitionInfo(
    "org-coffee", "BREAK", {"en_US": "Coffee", "en_GB": "Coffee", "de_DE": "Kaffeepause"}, False
)
LUNCH = PresenceDefinitionInfo(
    "org-lunch", "MEAL", {"en_US": "Lunch", "de_DE": "Mittagessen"}, False
)
# An org break definition labelled like the system presence of another definition.
TEAM_BREAK = PresenceDefinitionInfo("org-team-break", "BREAK", {"en_US": "Meal"}, False)
OLD = PresenceDefinitionInfo("org-old", "AWAY", {"en_US": "Gone fishing"}, False, deactivated=True)
DEFINITIONS = [AVAILABLE, ON_QUEUE, OFFLINE, BREAK, MEAL, COFFEE, LUNCH, OLD]


@pytest.mark.parametrize("spelling", ["on queue", "On_Queue", "OnQueue", "ON_QUEUE", " on-queue "])
def test_system_presence_names_match_loosely(spelling: str) -> None:
    """System presences match whatever their case, spaces, underscores or hyphens."""
    assert resolve(spelling, DEFINITIONS) is ON_QUEUE


def test_a_system_name_picks_the_system_definition() -> None:
    """ "Break" is the system Break definition, not the org's Coffee that is also a break, and
    not an org definition labelled with another system presence's name."""
    assert resolve("Break", DEFINITIONS) is BREAK
    assert resolve("Meal", [*DEFINITIONS, TEAM_BREAK]) is MEAL


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Coffee", COFFEE), ("KAFFEEPAUSE", COFFEE), ("mittagessen", LUNCH), ("Verfügbar", AVAILABLE)],
)
def test_labels_match_in_any_locale(name: str, expected: PresenceDefinitionInfo) -> None:
    """A label in any locale, case-folded, names its definition, system ones included."""
    assert resolve(name, DEFINITIONS) is expected


def test_spaces_inside_labels_are_collapsed() -> None:
    """Runs of spaces in a label or the name do not matter."""
    back_office = PresenceDefinitionInfo("org-bo", "BUSY", {"en_US": "Back  office"}, False)
    assert resolve("back office", [back_office]) is back_office


def test_a_definition_id_resolves_to_itself() -> None:
    """A definition id is accepted as is (the way out of an ambiguous label)."""
    assert resolve("ORG-COFFEE", DEFINITIONS) is COFFEE


def test_deactivated_definitions_never_match() -> None:
    """A deactivated definition matches neither by label nor by id."""
    with pytest.raises(PresenceNameError, match="unknown presence 'Gone fishing'"):
        resolve("Gone fishing", DEFINITIONS)
    with pytest.raises(PresenceNameError):
        resolve("org-old", DEFINITIONS)


def test_a_deactivated_system_definition_does_not_match() -> None:
    """A system presence whose definition is deactivated is unknown, and not offered."""
    retired = PresenceDefinitionInfo("sys-training", "TRAINING", {"en_US": "Training"}, True, True)
    with pytest.raises(PresenceNameError) as caught:
        resolve("Training", [*DEFINITIONS, retired])
    assert "Training" not in str(caught.value).split(";", 1)[1]


def test_an_unknown_name_lists_the_choices() -> None:
    """An unknown name is a ValueError listing system presences and org labels."""
    with pytest.raises(PresenceNameError) as caught:
        resolve("Lunchh", DEFINITIONS)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("unknown presence 'Lunchh'")
    assert "system presences: Available, Break, Meal, Offline, On Queue" in message
    assert "org presences: Coffee / Kaffeepause, Lunch / Mittagessen" in message
    assert "Gone fishing" not in message


def test_an_ambiguous_label_lists_the_candidates() -> None:
    """A label two definitions share is ambiguous; the error names both and the way out."""
    pause_break = PresenceDefinitionInfo("org-p1", "BREAK", {"fr_FR": "Pause"}, False)
    pause_meal = PresenceDefinitionInfo("org-p2", "MEAL", {"de_DE": "Pause"}, False)
    with pytest.raises(PresenceNameError) as caught:
        resolve("pause", [*DEFINITIONS, pause_break, pause_meal])
    message = str(caught.value)
    assert "ambiguous" in message
    assert "org BREAK, id org-p1" in message
    assert "org MEAL, id org-p2" in message
    assert "definition id" in message
    assert resolve("org-p2", [*DEFINITIONS, pause_break, pause_meal]) is pause_meal


def test_two_system_definitions_of_one_presence_are_ambiguous() -> None:
    """Should Genesys list two system definitions of one presence, neither is picked silently."""
    twin = system("ON_QUEUE", "On Queue", "sys-on-queue-2")
    with pytest.raises(PresenceNameError, match="ambiguous"):
        resolve("On Queue", [*DEFINITIONS, twin])


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_name_is_refused(name: str) -> None:
    """An empty name is an error that still lists the choices."""
    with pytest.raises(PresenceNameError, match="system presences"):
        resolve(name, DEFINITIONS)


def test_no_definitions_says_so() -> None:
    """With no active definitions the error says so instead of listing nothing."""
    with pytest.raises(PresenceNameError, match="no active presence definitions"):
        resolve("Available", [OLD])


def test_the_index_is_reusable() -> None:
    """A PresenceNames index resolves many names against one read of the definitions."""
    names = PresenceNames(DEFINITIONS)
    assert len(names) == 7
    assert [names.resolve(n).id for n in ("Offline", "Lunch", "available")] == [
        OFFLINE.id,
        LUNCH.id,
        AVAILABLE.id,
    ]


@given(st.text(max_size=20))
def test_any_name_resolves_or_raises_presence_name_error(name: str) -> None:
    """Whatever the text, resolve returns an active definition or raises PresenceNameError."""
    try:
        found: PresenceDefinitionInfo | str = resolve(name, DEFINITIONS)
    except PresenceNameError as exc:
        found = str(exc)
    if isinstance(found, str):
        assert "system presences" in found or "ambiguous" in found
    else:
        assert found in DEFINITIONS
        assert not found.deactivated
