"""The roster: which Genesys users the monitor watches, read from the Users API.

Every active user by default. When divisions, queues or groups are configured (by name or id), a
user is watched if it belongs to any of them. Queue memberships are read too when something needs
them (the selection, or metrics broken down by queue), so agents carry their queue ids.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Sequence

import structlog

from monitor.config import RosterSettings
from monitor.core.model import Agent
from monitor.errors import ConfigError
from monitor.genesys.api import GenesysApi

log = structlog.get_logger(__name__)


def _is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def resolve(wanted: Sequence[str], known: Sequence[tuple[str, str]], what: str) -> set[str]:
    """Ids of the entities named in `wanted` (ids, or names compared without case).

    Raises ConfigError naming every entry that matches nothing, and the choices there are."""
    by_name: dict[str, list[str]] = {}
    for entity_id, name in known:
        by_name.setdefault(name.casefold(), []).append(entity_id)
    ids: set[str] = set()
    unknown = []
    for entry in wanted:
        if _is_id(entry):
            ids.add(str(uuid.UUID(entry)))
        elif entry.casefold() in by_name:
            ids.update(by_name[entry.casefold()])
        else:
            unknown.append(entry)
    if unknown:
        choices = ", ".join(sorted({name for _, name in known})[:20])
        raise ConfigError(
            [f"roster.{what}: no {what[:-1]} named {u!r} (known: {choices})" for u in unknown]
        )
    return ids


class RosterSource:
    """Reads the roster through one OAuth client's API."""

    def __init__(
        self,
        api: GenesysApi,
        settings: RosterSettings,
        *,
        page_size: int,
        with_queues: bool,
    ) -> None:
        self._api = api
        self._settings = settings
        self._page_size = page_size
        self._with_queues = with_queues or bool(settings.queues)
        # Queue name -> id, from the last read (when queues are read at all).
        self.queue_names: dict[str, str] = {}

    async def fetch(self, watched: Collection[str] = ()) -> list[Agent]:
        """The watched agents now, sorted by id. `watched`: the agents watched until now."""
        users = [user.agent for user in await self._api.all_users(self._page_size)]
        users += await self._unlisted(watched, {user.id for user in users})
        queues_of: dict[str, list[str]] = {}
        if self._with_queues:
            queue_ids = await self._queue_ids()
            for queue_id in sorted(queue_ids):
                for member in await self._api.queue_member_ids(queue_id):
                    queues_of.setdefault(member, []).append(queue_id)
        selected = await self._selection(users, queues_of)
        agents = [
            dataclasses.replace(user, queue_ids=tuple(queues_of.get(user.id, ())))
            for user in users
            if selected is None or user.id in selected
        ]
        return sorted(agents, key=lambda a: a.id)

    async def _unlisted(self, watched: Collection[str], listed: set[str]) -> list[Agent]:
        """Watched agents the listing left out who are still active, read by id. The listing
        pages by offset: a user leaving it during the read moves every later user one place
        back, so one is never shown, and must not be taken for an agent who left."""
        found: list[Agent] = []
        async for users in self._api.users_by_id(sorted(set(watched) - listed)):
            for user in users:
                if user.agent.state == "active" and user.agent.id not in listed:
                    listed.add(user.agent.id)
                    found.append(user.agent)
        if found:
            log.info("roster_unlisted_found", agents=len(found))
        return found

    async def _queue_ids(self) -> set[str]:
        queues = await self._api.queues()
        self.queue_names = {name: queue_id for queue_id, name in queues}
        if self._settings.queues:
            return resolve(self._settings.queues, queues, "queues")
        return {queue_id for queue_id, _ in queues}

    async def _selection(
        self, users: Sequence[Agent], queues_of: dict[str, list[str]]
    ) -> set[str] | None:
        s = self._settings
        if not (s.divisions or s.queues or s.groups):
            return None
        selected: set[str] = set()
        if s.divisions:
            divisions = resolve(s.divisions, await self._api.divisions(), "divisions")
            selected |= {user.id for user in users if user.division_id in divisions}
        if s.queues:
            selected |= set(queues_of)
        if s.groups:
            groups = resolve(s.groups, await self._api.groups(), "groups")
            for group_id in sorted(groups):
                selected |= set(await self._api.group_member_ids(group_id))
        return selected
