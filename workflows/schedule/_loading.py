"""Plan (re)loads on the leader: the ``plan_schedules`` rows, and each scheduled plan's next
window opening as a due row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.errors import PlanError
from workflows.models import DueKind, DueState, DueTime, PlanSchedule
from workflows.plans import PatchPlan, plan_hash
from workflows.schedule._calendar import Blockers
from workflows.schedule._windows import next_window

log = logging.getLogger("patchgate.schedule")

PlanSource = Callable[[], Mapping[str, PatchPlan]]


async def reload_plans(
    session: AsyncSession, *, source: PlanSource | None, blockers: Blockers, now: dt.datetime
) -> tuple[str, bool]:
    """Refresh the plan_schedules rows from the plans; (what happened, whether it worked)."""
    if source is None:
        return "no plans directory configured", True
    try:
        plans = dict(await asyncio.to_thread(source))  # parsing YAML stays off the loop
    except PlanError as exc:
        log.error("plans not reloaded: %s", "; ".join(exc.messages))
        return "plans not reloaded: " + "; ".join(exc.messages), False
    rows = {r.plan_name: r for r in await session.scalars(sa.select(PlanSchedule))}
    scheduled = {n: p for n, p in plans.items() if p.schedule is not None}
    for name in set(rows) - set(scheduled):
        await cancel_windows(session, plan_name=name)
        await session.delete(rows[name])
    for name, plan in scheduled.items():
        row = rows.get(name)
        digest = plan_hash(plan)
        if row is None:
            row = PlanSchedule(plan_name=name, plan_hash=digest, loaded_at=now)
            row.plan_snapshot = plan.model_dump(mode="json")
            session.add(row)
        elif row.plan_hash != digest:
            row.plan_hash, row.loaded_at = digest, now
            row.plan_snapshot = plan.model_dump(mode="json")
            await cancel_windows(session, plan_name=name)
        await session.flush()
        await ensure_window(session, row=row, plan=plan, blockers=blockers, now=now)
    return f"{len(plans)} plans loaded, {len(scheduled)} with a schedule", True


async def cancel_windows(session: AsyncSession, *, plan_name: str) -> None:
    """Cancel the plan's pending window rows (it changed or lost its schedule)."""
    await session.execute(
        sa.update(DueTime)
        .where(
            DueTime.plan_name == plan_name,
            DueTime.kind == DueKind.WINDOW.value,
            DueTime.state == DueState.PENDING.value,
        )
        .values(state=DueState.CANCELLED.value, result="plan changed")
    )


async def ensure_window(
    session: AsyncSession,
    *,
    row: PlanSchedule,
    plan: PatchPlan,
    blockers: Blockers,
    now: dt.datetime,
) -> None:
    """Make sure the plan's next window (after the last one dealt with) is a row."""
    assert plan.schedule is not None
    pending = await session.scalar(
        sa.select(DueTime.id).where(
            DueTime.plan_name == row.plan_name,
            DueTime.kind == DueKind.WINDOW.value,
            DueTime.state == DueState.PENDING.value,
        )
    )
    if pending is not None:
        return
    window = next_window(
        plan.schedule,
        now=now,
        periods=blockers.periods(plan, now),
        opened_after=row.last_window_start,
    )
    if window is None:
        return
    key = f"window:{row.plan_name}:{window.start.isoformat()}"
    existing = await session.scalar(sa.select(DueTime).where(DueTime.key == key))
    if existing is not None:
        if existing.state == DueState.CANCELLED:
            existing.state, existing.result = DueState.PENDING.value, None
            existing.window_end = window.end
        return
    session.add(
        DueTime(
            key=key,
            kind=DueKind.WINDOW.value,
            due_at=window.start,
            window_end=window.end,
            plan_name=row.plan_name,
            created_at=now,
        )
    )
