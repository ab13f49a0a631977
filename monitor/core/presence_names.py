"""Presence targets named the way people name them, resolved to one presence definition.

A target is written either as a system presence (`Available`, `On Queue`, `Offline`, `Break`...)
or as the label of one of the org's own definitions, in any locale (`Coffee`, `Kaffeepause`).
Resolution, in this order, against the *active* definitions only (a deactivated definition can no
longer be set, so it never matches):

1. a definition id, exactly (case-insensitive): the way out when a label is ambiguous;
2. a system presence name, ignoring case, spaces, underscores and hyphens ("on queue",
   "On_Queue", "OnQueue", "ON_QUEUE"): the *system* definition of that presence, never a
   secondary one that shares its system presence. Genesys keeps one system definition per
   presence; should it ever list several, the name is ambiguous rather than picked at random;
3. a label in any locale, case-folded and with runs of spaces collapsed. Several labels of one
   definition (en_US and en_GB both "Coffee") are one match; labels of different definitions are
   ambiguous.

Anything else raises PresenceNameError listing what could have been meant. The definitions come
from `GET /api/v2/presence/definitions`; whoever reads them caches them and builds `PresenceNames`
once per read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from monitor.core.model import PresenceDefinitionInfo

__all__ = ["PresenceNameError", "PresenceNames", "resolve"]

_SEPARATORS = re.compile(r"[\s_\-]+")


class PresenceNameError(ValueError):
    """A presence name that matches no active definition, or more than one."""


def _system_key(text: str) -> str:
    return _SEPARATORS.sub("", text).casefold()


def _label_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _spoken(system_presence: str) -> str:
    """ON_QUEUE -> "On Queue": how the system presences are shown in the Genesys UI."""
    return system_presence.replace("_", " ").title()


def _describe(definition: PresenceDefinitionInfo) -> str:
    labels = sorted(set(definition.labels.values())) or ["(no label)"]
    kind = "system" if definition.system else "org"
    return f"{' / '.join(repr(label) for label in labels)} ({kind} {definition.system_presence}, id {definition.id})"


class PresenceNames:
    """The org's active presence definitions, indexed by id, system presence and label."""

    __slots__ = ("_by_id", "_by_label", "_by_system", "_definitions")

    def __init__(self, definitions: Sequence[PresenceDefinitionInfo]) -> None:
        self._definitions = [d for d in definitions if not d.deactivated]
        self._by_id: dict[str, PresenceDefinitionInfo] = {}
        self._by_system: dict[str, list[PresenceDefinitionInfo]] = {}
        self._by_label: dict[str, dict[str, PresenceDefinitionInfo]] = {}
        for definition in self._definitions:
            self._by_id[definition.id.casefold()] = definition
            if definition.system:
                key = _system_key(definition.system_presence)
                self._by_system.setdefault(key, []).append(definition)
            for label in definition.labels.values():
                if label.strip():
                    matches = self._by_label.setdefault(_label_key(label), {})
                    matches[definition.id] = definition

    def resolve(self, name: str) -> PresenceDefinitionInfo:
        """The one active definition `name` stands for; PresenceNameError otherwise."""
        if not isinstance(name, str) or not name.strip():
            raise PresenceNameError(f"a presence name is required; {self.choices()}")
        text = name.strip()
        by_id = self._by_id.get(text.casefold())
        if by_id is not None:
            return by_id
        systems = self._by_system.get(_system_key(text), [])
        if len(systems) == 1:
            return systems[0]
        if len(systems) > 1:
            raise self._ambiguous(text, systems)
        labelled = list(self._by_label.get(_label_key(text), {}).values())
        if len(labelled) == 1:
            return labelled[0]
        if labelled:
            raise self._ambiguous(text, labelled)
        raise PresenceNameError(f"unknown presence {text!r}; {self.choices()}")

    def choices(self) -> str:
        """What can be named: the system presences, then the org's own definitions by label."""
        system = sorted({_spoken(d.system_presence) for d in self._definitions if d.system})
        org = sorted(
            " / ".join(sorted(set(d.labels.values())))
            for d in self._definitions
            if not d.system and any(label.strip() for label in d.labels.values())
        )
        if not system and not org:
            return "the org has no active presence definitions"
        text = f"system presences: {', '.join(system) or '(none)'}"
        if org:
            text += f"; org presences: {', '.join(org)}"
        return text

    def _ambiguous(
        self, name: str, candidates: Sequence[PresenceDefinitionInfo]
    ) -> PresenceNameError:
        listed = "; ".join(_describe(d) for d in sorted(candidates, key=lambda d: d.id))
        return PresenceNameError(
            f"presence {name!r} is ambiguous: it matches {len(candidates)} definitions: {listed}; "
            "use a label only one of them has, or the definition id"
        )

    def __len__(self) -> int:
        return len(self._definitions)


def resolve(name: str, definitions: Sequence[PresenceDefinitionInfo]) -> PresenceDefinitionInfo:
    """The one active definition `name` stands for among `definitions` (see the module docstring);
    PresenceNameError, listing the choices or the candidates, otherwise. Builds the index each
    call: keep a `PresenceNames` to resolve many names against one read of the definitions."""
    return PresenceNames(definitions).resolve(name)
