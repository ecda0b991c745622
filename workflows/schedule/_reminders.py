"""Reminders to a gate's approvers at fixed fractions of its timeout, kept as due rows."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.models import DueKind, DueTime, Gate, GateKind, Ring, Rollout
from workflows.notify import NoteAbout, rollout_note
from workflows.plans import PatchPlan
from workflows.schedule._rules import ACTOR, REMINDER_FRACTIONS, Tx, zone_of
from workflows.states import GateState
from workflows.timeparse import format_both


async def ensure_reminders(tx: Tx, *, now: dt.datetime) -> bool:
    """Make sure every open approval gate has its reminder rows; whether any were added."""
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
    return added > 0


async def remind(session: AsyncSession, *, row: DueTime, now: dt.datetime) -> str:
    """A reminder is due: remind the gate's approvers, unless it was overtaken."""
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
            kind=NoteAbout.GATE_REMINDER,
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
