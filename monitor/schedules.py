"""Scheduled presence changes (end-of-day resets and the like): a cron expression in a time zone,
a selection, a target presence.

Each run is noted in the database under its due time, so that after a restart a run is neither
repeated nor silently skipped. A run missed while the monitor was down is, by the schedule's
catch-up policy, either skipped (and noted as missed) or run once if it is late by less than a
given time. Fire times come from `core.cron`, evaluated in the schedule's zone: a wall time that
falls in a spring-forward gap fires right after the gap, one that occurs twice in an autumn fold
fires once.
"""

from __future__ import annotations

import structlog

from monitor.actions import ActionRequest, ActionRunner
from monitor.clock import Clock
from monitor.core import cron
from monitor.errors import ActionError, MonitorError, StoreError
from monitor.metrics import Metrics
from monitor.schedule_config import Schedule
from monitor.store import Store

log = structlog.get_logger(__name__)

# Sleeping in slices keeps a suspended or stepped clock from making a run very late.
_SLICE_S = 60.0


class Scheduler:
    def __init__(
        self,
        schedules: list[Schedule],
        runner: ActionRunner,
        store: Store,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.schedules = schedules
        self._runner = runner
        self._store = store
        self._metrics = metrics
        self._clock = clock

    async def run_schedule(self, schedule: Schedule) -> None:
        """Follow one schedule until cancelled."""
        due = await self._catch_up(schedule)
        while True:
            self._metrics.schedule_next_run.labels(schedule.name).set(due / 1000)
            await self._sleep_until(due)
            await self._fire(schedule, due, late_ms=self._clock.now_ms() - due)
            due = cron.next_fire(schedule.cron, due, schedule.zone)

    async def _catch_up(self, schedule: Schedule) -> int:
        """Settle runs missed while the monitor was down; returns the next due time."""
        now = self._clock.now_ms()
        last = await self._store.last_schedule_run(schedule.name)
        if last is None:
            # First start with this schedule: nothing was due before it existed here.
            return cron.next_fire(schedule.cron, now, schedule.zone)
        missed: list[int] = []
        due = cron.next_fire(schedule.cron, last[0], schedule.zone)
        while due <= now:
            missed.append(due)
            due = cron.next_fire(schedule.cron, due, schedule.zone)
        if missed:
            latest = missed[-1]
            late_s = (now - latest) / 1000
            if schedule.catch_up == "run" and late_s <= schedule.catch_up_within_s:
                await self._fire(schedule, latest, late_ms=now - latest)
            else:
                detail = f"missed while the monitor was down ({len(missed)} run(s))"
                await self._store.record_schedule_run(schedule.name, latest, now, "missed", detail)
                log.warning(
                    "schedule_missed", schedule=schedule.name, missed=len(missed), late_s=late_s
                )
        return due

    async def _sleep_until(self, due_ms: int) -> None:
        while (wait := (due_ms - self._clock.now_ms()) / 1000) > 0:
            await self._clock.sleep(min(wait, _SLICE_S))

    async def _fire(self, schedule: Schedule, due_ms: int, *, late_ms: int) -> None:
        name = schedule.name
        # A run already noted for this due time (or a later one) is not run again.
        last = await self._store.last_schedule_run(name)
        if last is not None and last[0] >= due_ms:
            return
        request = ActionRequest(
            target=schedule.to,
            selector=schedule.selector,
            actor=f"schedule:{name}",
            dry_run=schedule.dry_run,
            force=schedule.force,
            max_agents=schedule.max_agents,
        )
        self._metrics.schedule_runs.labels(name).inc()
        try:
            result = await self._runner.run(request)
        except (ActionError, StoreError) as exc:
            outcome, detail = "failed", str(exc)
        except MonitorError as exc:
            outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
        else:
            changed = result.counts.get("changed", 0)
            self._metrics.schedule_agents_changed.labels(name).inc(changed)
            outcome = "failed" if result.failed else ("dry_run" if result.dry_run else "ok")
            detail = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "no agent"
        if outcome == "failed":
            self._metrics.schedule_failures.labels(name).inc()
        run_ms = self._clock.now_ms()
        await self._store.record_schedule_run(name, due_ms, run_ms, outcome, detail)
        self._metrics.schedule_last_run.labels(name).set(run_ms / 1000)
        log.info(
            "schedule_run", schedule=name, outcome=outcome, detail=detail, late_s=late_ms / 1000
        )
