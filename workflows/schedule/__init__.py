"""Due times: the leader's calendar, kept in the database.

Every time at which the leader must act is a row (``due_times``): a plan's next window
opening, a one-off run, a reminder to a gate's approvers. Gate expiries, auto-gate soak
ends, exception expiries and freeze ends are times on their own rows. The APScheduler
jobs of ``bot/scheduler.py`` only *wake* the engine at those times; the engine's tick
calls :meth:`Schedules.check`, which does the work, so a lost wake-up is caught by the
next tick.

Rules:

* **Windows.** At a window's opening the plan's rollout is created (``scheduled``,
  bound to the window's end). A window is *missed* if, when PatchGate gets to it, less
  than ``schedule.min_time_for_batch`` of it is left: it is recorded and announced in
  the plan's channel and nothing runs late; the next row is the next window after
  *now* (never a burst of catch-up runs). A rollout still waiting from an earlier
  window is given the new window instead of a new rollout.
* **Freezes** hold every active rollout (at its next batch boundary) and block window
  openings and one-off runs while active; lifting one releases only the holds it set.
* **One-off runs** (``schedule run PLAN --at``) start a rollout at that time, bound to a
  window of the plan's duration if it has a schedule; one found more than
  ``ONE_OFF_GRACE`` late (or with too little window left) is missed like a window.
* **Reminders** go to a gate's approvers at 50% and 90% of its timeout; a reminder
  overtaken by a later one (after an outage) is skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.engine import create_rollout, refuse
from workflows.errors import Conflict, Forbidden, InputError, PlanError
from workflows.gates import Actor, has_power
from workflows.models import (
    DueKind,
    DueState,
    DueTime,
    Freeze,
    Gate,
    GateKind,
    HostException,
    PlanSchedule,
    Request,
    RequestKind,
    RequestState,
    Ring,
    Rollout,
)
from workflows.notify import TOPIC, rollout_note
from workflows.plans import PatchPlan, plan_hash
from workflows.schedule.windows import (
    Period,
    Window,
    calendar_periods,
    next_window,
    plan_periods,
    upcoming,
)
from workflows.states import ROLLOUT_ACTIVE_VALUES as ACTIVE
from workflows.states import GateState, RolloutState
from workflows.timeparse import format_both

log = logging.getLogger("patchgate.schedule")

ACTOR = "patchgate"
FREEZE_HOLDER = "freeze"  # Rollout.hold_by for holds a freeze set
ONE_OFF_GRACE = dt.timedelta(minutes=15)
REMINDER_FRACTIONS = (50, 90)
CALENDAR_HORIZON = dt.timedelta(days=400)

Tx = Callable[[str], AbstractAsyncContextManager[AsyncSession]]
PlanSource = Callable[[], Mapping[str, PatchPlan]]


# --- small pure helpers the engine uses ---------------------------------------------------


def min_time(plan: PatchPlan) -> dt.timedelta:
    return plan.schedule.min_time_for_batch if plan.schedule else dt.timedelta(0)


def window_open(rollout: Rollout, plan: PatchPlan, now: dt.datetime) -> bool:
    """May a batch (or the start) of this rollout run now? Always, if it has no window."""
    return rollout.window_end is None or now + min_time(plan) <= rollout.window_end


def zone_of(plan: PatchPlan) -> str:
    return plan.schedule.timezone if plan.schedule else "UTC"


def window_suffix(rollout: Rollout, plan: PatchPlan) -> str:
    """For the parent message: when the rollout's window ends, in the plan's zone and UTC."""
    if rollout.window_end is None:
        return ""
    return f"; window ends {format_both(rollout.window_end, zone_of(plan))}"


def window_closed_text(rollout: Rollout, plan: PatchPlan, *, abort: bool) -> str:
    end = format_both(rollout.window_end, zone_of(plan)) if rollout.window_end else "?"
    if abort:
        return f"Rollout #{rollout.id} aborted: its window ended ({end}); the plan says abort"
    return (
        f"Window ended ({end}): no new batch starts; rollout #{rollout.id} waits for the "
        "plan's next window"
    )


def _channel(plan: PatchPlan) -> str | None:
    return plan.slack.channel if plan.slack else None


# --- faces: one-off runs and freezes (CLI and Slack call these) ------------------------------


async def active_freeze(session: AsyncSession, *, now: dt.datetime) -> Freeze | None:
    return await session.scalar(
        sa.select(Freeze)
        .where(Freeze.lifted_at.is_(None), sa.or_(Freeze.until.is_(None), Freeze.until > now))
        .order_by(Freeze.id.desc())
        .limit(1)
    )


async def freeze(
    session: AsyncSession,
    *,
    actor: Actor,
    operators: frozenset[str],
    reason: str,
    until: dt.datetime | None,
    now: dt.datetime,
) -> Freeze | Forbidden:
    """Start a global change freeze (operators only, audited). Returns Forbidden if refused."""
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="freeze",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    if not reason.strip():
        raise InputError("a freeze needs a reason")
    if until is not None and until <= now:
        raise InputError(f"the freeze would end in the past ({until:%Y-%m-%d %H:%M} UTC)")
    row = Freeze(reason=reason.strip(), created_by=actor.user_id, started_at=now, until=until)
    session.add(row)
    await session.flush()
    await audit.append(
        session,
        kind="freeze.started",
        at=now,
        actor=actor.user_id,
        data={
            "freeze_id": row.id,
            "reason": row.reason,
            "until": until.isoformat() if until else None,
            "source": actor.source,
        },
    )
    return row


async def unfreeze(
    session: AsyncSession, *, actor: Actor, operators: frozenset[str], now: dt.datetime
) -> list[Freeze] | Forbidden:
    """Lift every active freeze at once (operators only, audited)."""
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="unfreeze",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    rows = list(
        await session.scalars(
            sa.select(Freeze).where(
                Freeze.lifted_at.is_(None),
                sa.or_(Freeze.until.is_(None), Freeze.until > now),
            )
        )
    )
    if not rows:
        raise Conflict("there is no active freeze")
    for row in rows:
        row.lifted_at, row.lifted_by = now, actor.user_id
        await audit.append(
            session,
            kind="freeze.lifted",
            at=now,
            actor=actor.user_id,
            data={"freeze_id": row.id, "source": actor.source},
        )
    return rows


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
        raise Conflict(f"plan {plan.name!r} already has a run at that time (#{existing})")
    session.add(row)
    await session.flush()
    await audit.append(
        session,
        kind="schedule.run_requested",
        at=now,
        actor=actor.user_id,
        data={"due_id": row.id, "plan": plan.name, "at": at.isoformat(), "source": actor.source},
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
    session.add(request)
    await session.flush()
    await audit.append(
        session,
        kind="request.queued",
        at=now,
        actor=requested_by,
        data={"request_id": request.id, "action": "reload"},
    )
    return request


# --- listing -----------------------------------------------------------------------------


def blocking_periods(
    plan: PatchPlan, *, now: dt.datetime, calendar: Path | None, default_zone: str = "UTC"
) -> list[Period]:
    periods = plan_periods(plan)
    if calendar is not None:
        periods += calendar_periods(
            calendar, start=now - dt.timedelta(days=1), end=now + CALENDAR_HORIZON,
            default_zone=default_zone,
        )  # fmt: skip
    return sorted(periods, key=lambda p: p.start)


def freeze_period(row: Freeze) -> Period:
    return Period(row.started_at, row.until, row.reason, "freeze")


def list_windows(
    plan: PatchPlan,
    *,
    now: dt.datetime,
    calendar: Path | None = None,
    freezes: list[Freeze] = (),  # type: ignore[assignment]
    count: int = 5,
    default_zone: str = "UTC",
) -> list[Window]:
    """The next ``count`` windows of a plan, blacked-out or frozen ones marked."""
    if plan.schedule is None:
        return []
    periods = [freeze_period(f) for f in freezes] + blocking_periods(
        plan, now=now, calendar=calendar, default_zone=default_zone
    )
    return upcoming(plan.schedule, now=now, periods=periods, count=count)


# --- the leader's side ---------------------------------------------------------------------


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
        self._calendar = calendar
        self._zone = default_zone
        self._synced = False
        self._on_change = on_change or (lambda: None)

    async def check(self, tx: Tx, now: dt.datetime) -> bool:
        progressed = await self._sync(tx, now)
        progressed = await self._apply_freeze(tx, now) or progressed
        progressed = await self._ensure_reminders(tx, now) or progressed
        progressed = await self._run_due(tx, now) or progressed
        if progressed:
            self._on_change()
        return progressed

    # --- plans ----------------------------------------------------------------------------

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
            result, ok = await self._load(session, now)
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

    async def _load(self, session: AsyncSession, now: dt.datetime) -> tuple[str, bool]:
        if self._plans is None:
            return "no plans directory configured", True
        try:
            plans = dict(self._plans())
        except PlanError as exc:
            log.error("plans not reloaded: %s", "; ".join(exc.messages))
            return "plans not reloaded: " + "; ".join(exc.messages), False
        rows = {r.plan_name: r for r in await session.scalars(sa.select(PlanSchedule))}
        scheduled = {n: p for n, p in plans.items() if p.schedule is not None}
        for name in set(rows) - set(scheduled):
            await self._cancel_windows(session, name)
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
                await self._cancel_windows(session, name)
            await session.flush()
            await self._ensure_window(session, row, plan, now)
        return f"{len(plans)} plans loaded, {len(scheduled)} with a schedule", True

    async def _cancel_windows(self, session: AsyncSession, plan_name: str) -> None:
        await session.execute(
            sa.update(DueTime)
            .where(
                DueTime.plan_name == plan_name,
                DueTime.kind == DueKind.WINDOW.value,
                DueTime.state == DueState.PENDING.value,
            )
            .values(state=DueState.CANCELLED.value, result="plan changed")
        )

    def _periods(self, plan: PatchPlan, now: dt.datetime) -> list[Period]:
        return blocking_periods(plan, now=now, calendar=self._calendar, default_zone=self._zone)

    async def _ensure_window(
        self, session: AsyncSession, row: PlanSchedule, plan: PatchPlan, now: dt.datetime
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
            periods=self._periods(plan, now),
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

    # --- freezes --------------------------------------------------------------------------

    async def _apply_freeze(self, tx: Tx, now: dt.datetime) -> bool:
        async with tx("schedule.freeze") as session:
            current = await active_freeze(session, now=now)
            if current is not None:
                rollouts = list(
                    await session.scalars(
                        sa.select(Rollout).where(
                            Rollout.state.in_(ACTIVE), Rollout.hold_reason.is_(None)
                        )
                    )
                )
                for rollout in rollouts:
                    rollout.hold_reason = f"change freeze: {current.reason}"
                    rollout.hold_by, rollout.held_at = FREEZE_HOLDER, now
                    await self._rollout_event(session, rollout, "rollout.frozen", current, now)
            else:
                rollouts = list(
                    await session.scalars(
                        sa.select(Rollout).where(
                            Rollout.state.in_(ACTIVE),
                            Rollout.hold_by == FREEZE_HOLDER,
                        )
                    )
                )
                for rollout in rollouts:
                    await self._rollout_event(session, rollout, "rollout.unfrozen", None, now)
                    rollout.hold_reason = rollout.hold_by = rollout.held_at = None
        return bool(rollouts)

    async def _rollout_event(
        self,
        session: AsyncSession,
        rollout: Rollout,
        kind: str,
        freeze_row: Freeze | None,
        now: dt.datetime,
    ) -> None:
        if freeze_row is not None:
            text = f"Change freeze ({freeze_row.reason}): no new batch starts until it is lifted"
            suffix = f"freeze:{freeze_row.id}:held"
            data: dict[str, Any] = {"freeze_id": freeze_row.id, "reason": freeze_row.reason}
        else:
            text = "Change freeze lifted: continuing"
            held = rollout.held_at.isoformat() if rollout.held_at else "?"
            suffix, data = f"freeze:lifted:{held}", {}
        await audit.append(
            session, kind=kind, at=now, actor=ACTOR, rollout_id=rollout.id, data=data
        )
        await outbox.enqueue(session, **rollout_note(rollout, suffix, text, now=now, kind=kind))

    # --- reminders ------------------------------------------------------------------------

    async def _ensure_reminders(self, tx: Tx, now: dt.datetime) -> bool:
        async with tx("schedule.reminders") as session:
            gates = list(
                await session.scalars(
                    sa.select(Gate).where(
                        Gate.state == GateState.OPEN.value,
                        Gate.kind == GateKind.APPROVAL.value,
                        Gate.expires_at.is_not(None),
                        Gate.escalated.is_(False),
                    )
                )
            )
            if not gates:
                return False
            known = set(
                await session.scalars(
                    sa.select(DueTime.key).where(
                        DueTime.kind == DueKind.REMINDER.value,
                        DueTime.gate_id.in_([g.id for g in gates]),
                    )
                )
            )
            added = 0
            for gate in gates:
                assert gate.expires_at is not None
                span = gate.expires_at - gate.opened_at
                for pct in REMINDER_FRACTIONS:
                    key = f"gate:{gate.id}:reminder:{pct}"
                    if key in known:
                        continue
                    added += 1
                    session.add(
                        DueTime(
                            key=key,
                            kind=DueKind.REMINDER.value,
                            due_at=gate.opened_at + span * pct / 100,
                            gate_id=gate.id,
                            rollout_id=gate.rollout_id,
                            payload={"percent": pct},
                            created_at=now,
                        )
                    )
        if added:
            self._on_change()  # new due rows (and a new gate expiry) for the scheduler
        return False  # rows only: nothing moved yet

    # --- due rows -------------------------------------------------------------------------

    async def _run_due(self, tx: Tx, now: dt.datetime) -> bool:
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
                    row.result = await self._remind(session, row, now)
                else:
                    row.result = await self._open(session, row, now)
        return bool(ids)

    async def _remind(self, session: AsyncSession, row: DueTime, now: dt.datetime) -> str:
        gate = await session.get(Gate, row.gate_id) if row.gate_id else None
        if gate is None or gate.state != GateState.OPEN or gate.expires_at is None:
            return "gate no longer open"
        if now >= gate.expires_at:
            return "gate already expired"
        pct = int(row.payload.get("percent", 0))
        later = [p for p in REMINDER_FRACTIONS if p > pct]
        span = gate.expires_at - gate.opened_at
        if any(now >= gate.opened_at + span * p / 100 for p in later):
            return "superseded by a later reminder"
        rollout = await session.get(Rollout, gate.rollout_id)
        ring = await session.get(Ring, gate.ring_id)
        assert rollout is not None and ring is not None
        plan = PatchPlan.model_validate(rollout.plan_snapshot)
        spec = plan.rings[ring.position].gate
        who = ", ".join(
            [f"<@{u}>" for u in (spec.approvers.users if spec.approvers else [])]
            + [f"<!subteam^{g}>" for g in (spec.approvers.groups if spec.approvers else [])]
        )
        text = (
            f"Reminder {who}: approval still needed before ring {ring.name}; the gate "
            f"expires {format_both(gate.expires_at, zone_of(plan))} ({pct}% of its timeout "
            "has passed)"
        )
        await outbox.enqueue(
            session,
            **rollout_note(
                rollout,
                f"gate:{gate.id}:reminder:{pct}",
                text,
                now=now,
                kind="gate.reminder",
                extra={"gate_id": gate.id, "percent": pct},
            ),
        )
        await audit.append(
            session,
            kind="gate.reminded",
            at=now,
            actor=ACTOR,
            rollout_id=rollout.id,
            data={"gate_id": gate.id, "percent": pct},
        )
        return f"reminded at {pct}%"

    async def _plan_for(self, session: AsyncSession, row: DueTime) -> PatchPlan | None:
        if row.kind == DueKind.RUN:
            return PatchPlan.model_validate(row.payload["plan_snapshot"])
        schedule = await session.get(PlanSchedule, row.plan_name)
        if schedule is None:
            return None
        return PatchPlan.model_validate(schedule.plan_snapshot)

    async def _open(self, session: AsyncSession, row: DueTime, now: dt.datetime) -> str:
        """A window opening or a one-off run is due: start, resume, or record a miss."""
        plan = await self._plan_for(session, row)
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
            result = await self._announce(
                session, row, plan, now, "missed",
                f"{what.capitalize()} of plan {plan.name} opening "
                f"{format_both(row.due_at, zone_of(plan))} was missed: PatchGate was not "
                "running in time. Nothing runs late; ",
            )  # fmt: skip
        elif (current := await active_freeze(session, now=now)) is not None:
            result = await self._announce(
                session, row, plan, now, "frozen",
                f"{what.capitalize()} of plan {plan.name} opening "
                f"{format_both(row.due_at, zone_of(plan))} skipped: change freeze "
                f"({current.reason}); ",
            )  # fmt: skip
        else:
            result = await self._start(session, row, plan, now)
        if row.kind == DueKind.WINDOW:
            schedule = await session.get(PlanSchedule, row.plan_name)
            if schedule is not None:
                schedule.last_window_start = row.due_at
                await session.flush()
                await self._ensure_window(session, schedule, plan, now)
        return result

    async def _announce(
        self,
        session: AsyncSession,
        row: DueTime,
        plan: PatchPlan,
        now: dt.datetime,
        outcome: str,
        text: str,
    ) -> str:
        if row.kind == DueKind.WINDOW and plan.schedule is not None:
            following = next_window(
                plan.schedule, now=now, periods=self._periods(plan, now), opened_after=row.due_at
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
            key=f"{row.key}:{outcome}",
            topic=TOPIC,
            at=now,
            payload={"kind": kind, "plan": plan.name, "channel": _channel(plan), "text": text},
        )
        return outcome

    async def _start(
        self, session: AsyncSession, row: DueTime, plan: PatchPlan, now: dt.datetime
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
                        f"Window open until {format_both(row.window_end, zone_of(plan))}: "
                        "continuing",
                        now=now,
                        kind="rollout.window_opened",
                    ),
                )
                return f"rollout #{active.id} continues"
            return await self._announce(
                session, row, plan, now, "busy",
                f"Window of plan {plan.name} opening {format_both(row.due_at, zone_of(plan))}: "
                f"rollout #{active.id} is still {active.state}, so no new rollout starts; ",
            )  # fmt: skip
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


# --- what the scheduler wakes the engine for ---------------------------------------------------


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
