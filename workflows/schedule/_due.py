"""Due rows on the leader: a window opening or one-off run starts (or resumes, or is recorded
as missed, frozen or busy), a reminder is sent; and every future time the leader must wake.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, notify, outbox
from workflows.models import (
    DueKind,
    DueState,
    DueTime,
    Freeze,
    Gate,
    HostException,
    PlanSchedule,
    Rollout,
)
from workflows.notify import NoteAbout, rollout_note
from workflows.plans import PatchPlan
from workflows.requests import create_rollout
from workflows.schedule._calendar import Blockers
from workflows.schedule._freezes import active_freeze
from workflows.schedule._loading import ensure_window
from workflows.schedule._reminders import remind
from workflows.schedule._rules import ACTOR, ONE_OFF_GRACE, Tx, channel_of, min_time, zone_of
from workflows.schedule._windows import next_window
from workflows.states import ROLLOUT_ACTIVE_VALUES as ACTIVE
from workflows.states import GateState, RolloutState
from workflows.timeparse import format_both


async def run_due(tx: Tx, *, blockers: Blockers, now: dt.datetime) -> bool:
    """Act on every pending due row whose time has come, each in its own transaction."""
    async with tx("schedule.due") as session:
        ids = list(
            await session.scalars(
                sa.select(DueTime.id)
                .where(DueTime.state == DueState.PENDING.value, DueTime.due_at <= now)
                .order_by(DueTime.due_at, DueTime.id)
            )
        )
    for due_id in ids:
        async with tx(f"schedule.due.{due_id}") as session:
            row = await session.get(DueTime, due_id)
            if row is None or row.state != DueState.PENDING:
                continue
            row.state, row.done_at = DueState.DONE.value, now
            await session.flush()
            if row.kind == DueKind.REMINDER:
                row.result = await remind(session, row=row, now=now)
            else:
                row.result = await _open(session, row=row, blockers=blockers, now=now)
    return bool(ids)


async def _plan_for(session: AsyncSession, row: DueTime) -> PatchPlan | None:
    if row.kind == DueKind.RUN:
        return PatchPlan.model_validate(row.payload["plan_snapshot"])
    schedule = await session.get(PlanSchedule, row.plan_name)
    if schedule is None:
        return None
    return PatchPlan.model_validate(schedule.plan_snapshot)


async def _open(
    session: AsyncSession, *, row: DueTime, blockers: Blockers, now: dt.datetime
) -> str:
    """A window opening or a one-off run is due: start, resume, or record a miss."""
    plan = await _plan_for(session, row)
    if plan is None:
        return "plan no longer scheduled"
    what = "window" if row.kind == DueKind.WINDOW else "one-off run"
    late_limit = (
        row.window_end - min_time(plan)
        if row.window_end is not None
        else row.due_at + ONE_OFF_GRACE
    )
    result: str
    if now >= late_limit:
        text = (
            f"{what.capitalize()} of plan {plan.name} opening "
            f"{format_both(row.due_at, zone_of(plan))} was missed: PatchGate was not "
            "running in time. Nothing runs late; "
        )
        result = await _announce(
            session, row=row, plan=plan, blockers=blockers, now=now, outcome="missed", text=text
        )
    elif (current := await active_freeze(session, now=now)) is not None:
        text = (
            f"{what.capitalize()} of plan {plan.name} opening "
            f"{format_both(row.due_at, zone_of(plan))} skipped: change freeze "
            f"({current.reason}); "
        )
        result = await _announce(
            session, row=row, plan=plan, blockers=blockers, now=now, outcome="frozen", text=text
        )
    else:
        result = await _start(session, row=row, plan=plan, blockers=blockers, now=now)
    if row.kind == DueKind.WINDOW:
        schedule = await session.get(PlanSchedule, row.plan_name)
        if schedule is not None:
            schedule.last_window_start = row.due_at
            await session.flush()
            await ensure_window(session, row=schedule, plan=plan, blockers=blockers, now=now)
    return result


async def _announce(
    session: AsyncSession,
    *,
    row: DueTime,
    plan: PatchPlan,
    blockers: Blockers,
    now: dt.datetime,
    outcome: str,
    text: str,
) -> str:
    if row.kind == DueKind.WINDOW and plan.schedule is not None:
        following = next_window(
            plan.schedule, now=now, periods=blockers.periods(plan, now), opened_after=row.due_at
        )
        text += (
            f"the next window opens {format_both(following.start, zone_of(plan))}."
            if following
            else "no further window is scheduled."
        )
    else:
        text += "start it again if it is still wanted."
    kind = f"schedule.window_{outcome}"
    await audit.append(
        session,
        kind=kind,
        at=now,
        actor=ACTOR,
        data={
            "due_id": row.id,
            "plan": plan.name,
            "opening": row.due_at.isoformat(),
            "window_end": row.window_end.isoformat() if row.window_end else None,
        },
    )
    await outbox.enqueue(
        session,
        **notify.plan_note(
            f"{row.key}:{outcome}",
            plan=plan.name,
            channel=channel_of(plan),
            text=text,
            about=notify.PlanNoteAbout(kind),
            now=now,
        ),
    )
    return outcome


async def _start(
    session: AsyncSession,
    *,
    row: DueTime,
    plan: PatchPlan,
    blockers: Blockers,
    now: dt.datetime,
) -> str:
    active = await session.scalar(
        sa.select(Rollout).where(Rollout.plan_name == plan.name, Rollout.state.in_(ACTIVE))
    )
    if active is not None:
        if active.state == RolloutState.WAITING_WINDOW and row.window_end is not None:
            active.window_end = row.window_end
            await audit.append(
                session,
                kind="rollout.window_assigned",
                at=now,
                actor=ACTOR,
                rollout_id=active.id,
                data={"due_id": row.id, "window_end": row.window_end.isoformat()},
            )
            await outbox.enqueue(
                session,
                **rollout_note(
                    active,
                    f"window:{row.due_at.isoformat()}",
                    f"Window open until {format_both(row.window_end, zone_of(plan))}: continuing",
                    now=now,
                    kind=NoteAbout.WINDOW_OPENED,
                ),
            )
            return f"rollout #{active.id} continues"
        text = (
            f"Window of plan {plan.name} opening {format_both(row.due_at, zone_of(plan))}: "
            f"rollout #{active.id} is still {active.state}, so no new rollout starts; "
        )
        return await _announce(
            session, row=row, plan=plan, blockers=blockers, now=now, outcome="busy", text=text
        )
    rollout = await create_rollout(
        session,
        plan=plan,
        requested_by=row.requested_by or ACTOR,
        source=str(row.payload.get("source", "schedule")),
        now=now,
        window_end=row.window_end,
        audit_data={
            "source": "schedule" if row.kind == DueKind.WINDOW else "one-off",
            "due_id": row.id,
            "window_end": row.window_end.isoformat() if row.window_end else None,
        },
    )
    row.rollout_id = rollout.id
    return f"started rollout #{rollout.id}"


async def wake_times(session: AsyncSession, *, now: dt.datetime) -> list[dt.datetime]:
    """Every future time at which the leader has something to do, from the database."""
    times: set[dt.datetime] = set()
    times.update(
        await session.scalars(
            sa.select(DueTime.due_at).where(DueTime.state == DueState.PENDING.value)
        )
    )
    times.update(
        t
        for t in await session.scalars(
            sa.select(Gate.expires_at).where(Gate.state == GateState.OPEN.value)
        )
        if t is not None
    )
    times.update(
        t
        for t in await session.scalars(
            sa.select(Gate.soak_until).where(Gate.state == GateState.OPEN.value)
        )
        if t is not None
    )
    times.update(
        await session.scalars(
            sa.select(HostException.expires_at).where(HostException.revoked_at.is_(None))
        )
    )
    times.update(
        t
        for t in await session.scalars(sa.select(Freeze.until).where(Freeze.lifted_at.is_(None)))
        if t is not None
    )
    times.update(
        t
        for t in await session.scalars(
            sa.select(Rollout.window_end).where(Rollout.state.in_(ACTIVE))
        )
        if t is not None
    )
    return sorted(t for t in times if t > now)
