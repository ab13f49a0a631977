"""A schedule of presence changes, as configured: a cron expression in a time zone, a
selection, a target presence, and what to do about a run missed while the monitor was down.
Parsing only; `monitor.schedules` runs them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.core import cron
from monitor.core.selectors import Selector, parse_duration

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: cron.CronSpec
    expression: str
    timezone: str
    to: str
    selector: Selector
    dry_run: bool = False
    force: bool = False
    max_agents: int | None = None
    catch_up: Literal["skip", "run"] = "skip"
    catch_up_within_s: float = 900.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Schedule:
        """A schedule from a `[[schedules]]` table; ValueError naming the bad key."""
        known = {
            "name", "cron", "timezone", "to", "select", "dry_run", "force", "max_agents",
            "catch_up", "catch_up_within", "enabled",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown setting")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("name: a short name of letters, digits, '.', '_' or '-' is required")
        expression = data.get("cron")
        if not isinstance(expression, str):
            raise ValueError('cron: a cron expression is required, e.g. "0 23 * * *"')
        try:
            spec = cron.parse(expression)
        except ValueError as exc:
            raise ValueError(f"cron: {exc}") from None
        zone = data.get("timezone", "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"timezone: unknown time zone {zone!r}") from None
        to = data.get("to")
        if not isinstance(to, str) or not to.strip():
            raise ValueError('to: the target presence is required, e.g. "Offline"')
        try:
            selector = Selector.from_mapping(data.get("select") or {})
        except ValueError as exc:
            raise ValueError(f"select.{exc}") from None
        catch_up = data.get("catch_up", "skip")
        if catch_up not in ("skip", "run"):
            raise ValueError("catch_up: 'skip' or 'run'")
        within = _seconds(data.get("catch_up_within", 900), "catch_up_within")
        max_agents = data.get("max_agents")
        if max_agents is not None and (
            isinstance(max_agents, bool) or not isinstance(max_agents, int) or max_agents < 1
        ):
            raise ValueError("max_agents: a positive whole number")
        for key in ("dry_run", "force"):
            if not isinstance(data.get(key, False), bool):
                raise ValueError(f"{key}: true or false")
        return cls(
            name=name,
            cron=spec,
            expression=expression,
            timezone=zone,
            to=to,
            selector=selector,
            dry_run=bool(data.get("dry_run", False)),
            force=bool(data.get("force", False)),
            max_agents=max_agents,
            catch_up=catch_up,
            catch_up_within_s=within,
        )


def _seconds(value: Any, key: str) -> float:
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def load(tables: tuple[Mapping[str, Any], ...]) -> list[Schedule]:
    """The enabled schedules; ValueError("schedules[n].key: ...") for the first bad one."""
    schedules = []
    for n, table in enumerate(tables):
        try:
            schedule = Schedule.from_mapping(table)
        except ValueError as exc:
            raise ValueError(f"schedules[{n}].{exc}") from None
        if table.get("enabled", True):
            schedules.append(schedule)
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise ValueError("schedules: names must be unique")
    return schedules
