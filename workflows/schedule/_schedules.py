"""The leader's side of the schedule: what the engine's tick calls, in order (plan reloads,
freezes, reminder rows, due rows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from workflows import audit
from workflows.models import Request, RequestKind, RequestState
from workflows.schedule._calendar import Blockers
from workflows.schedule._due import run_due
from workflows.schedule._freezes import apply_freeze
from workflows.schedule._loading import PlanSource, reload_plans
from workflows.schedule._reminders import ensure_reminders
from workflows.schedule._rules import Tx


class Schedules:
    """What the engine's tick calls: plan (re)loads, freezes, and due rows."""

    def __init__(
        self,
        *,
        plans: PlanSource | None = None,
        calendar: Path | None = None,
        default_zone: str = "UTC",
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._plans = plans
        self._blockers = Blockers(calendar=calendar, default_zone=default_zone)
        self._synced = False
        self._on_change = on_change or (lambda: None)

    async def check(self, tx: Tx, now: dt.datetime) -> bool:
        progressed = await self._sync(tx, now)
        progressed = await apply_freeze(tx, now=now) or progressed
        if await ensure_reminders(tx, now=now):
            self._on_change()  # new due rows (and a new gate expiry) for the scheduler
        progressed = await run_due(tx, blockers=self._blockers, now=now) or progressed
        if progressed:
            self._on_change()
        return progressed

    async def _sync(self, tx: Tx, now: dt.datetime) -> bool:
        async with tx("schedule.reload") as session:
            reloads = list(
                await session.scalars(
                    sa.select(Request).where(
                        Request.kind == RequestKind.RELOAD.value,
                        Request.state == RequestState.PENDING.value,
                    )
                )
            )
            if self._synced and not reloads:
                return False
            result, ok = await reload_plans(
                session, source=self._plans, blockers=self._blockers, now=now
            )
            for request in reloads:
                request.state = (RequestState.DONE if ok else RequestState.REFUSED).value
                request.result, request.processed_at = result, now
                await audit.append(
                    session,
                    kind="plans.reloaded" if ok else "plans.reload_failed",
                    at=now,
                    actor=request.requested_by,
                    data={"request_id": request.id, "result": result},
                )
        self._synced = True
        self._on_change()  # window rows may have changed: the scheduler rebuilds its jobs
        return bool(reloads)
