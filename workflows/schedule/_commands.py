"""The faces' other schedule commands: a one-off run of a plan, and a plans reload request."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.errors import Conflict, Forbidden, InputError
from workflows.gates import Actor, has_power
from workflows.models import DueKind, DueTime, Request, RequestKind, RequestState
from workflows.plans import PatchPlan
from workflows.requests import refuse


async def schedule_run(
    session: AsyncSession,
    *,
    plan: PatchPlan,
    at: dt.datetime,
    actor: Actor,
    operators: frozenset[str],
    now: dt.datetime,
) -> DueTime | Forbidden:
    """Schedule a single rollout of ``plan`` at ``at`` (operators only, audited)."""
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="run",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    if at < now - dt.timedelta(minutes=1):
        raise InputError(f"{at:%Y-%m-%d %H:%M} UTC is in the past")
    window_end = at + plan.schedule.duration if plan.schedule else None
    row = DueTime(
        key=f"run:{plan.name}:{at.isoformat()}",
        kind=DueKind.RUN.value,
        due_at=at,
        window_end=window_end,
        plan_name=plan.name,
        requested_by=actor.user_id,
        payload={"plan_snapshot": plan.model_dump(mode="json"), "source": actor.source},
        created_at=now,
    )
    existing = await session.scalar(sa.select(DueTime.id).where(DueTime.key == row.key))
    if existing is not None:
        raise Conflict(f"plan {plan.name!r} already has a one-off run at that time")
    await audit.add_audited(
        session,
        row,
        kind="schedule.run_requested",
        at=now,
        actor=actor.user_id,
        data=lambda row: {
            "due_id": row.id,
            "plan": plan.name,
            "at": at.isoformat(),
            "source": actor.source,
        },
    )
    return row


async def request_reload(session: AsyncSession, *, requested_by: str, now: dt.datetime) -> Request:
    """Ask the leader to reload the plans directory (applied at its next tick)."""
    request = Request(
        kind=RequestKind.RELOAD.value,
        requested_by=requested_by,
        state=RequestState.PENDING.value,
        created_at=now,
    )
    await audit.add_audited(
        session,
        request,
        kind="request.queued",
        at=now,
        actor=requested_by,
        data=lambda request: {"request_id": request.id, "action": "reload"},
    )
    return request
