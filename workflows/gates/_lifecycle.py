"""A gate's life: opened by the engine before a ring, then approved, rejected or
expired. This module is the only writer of gates: it creates them and is the one place
that changes ``Gate.state``, always through :func:`workflows.states.gate_transition`
and always with one ``gate.state`` audit event of one shape
({gate_id, ring, from, to, by, reason}).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.gates._rules import gate_spec
from workflows.models import Gate, GateKind, Ring, Rollout
from workflows.notify import NoteAbout, rollout_note
from workflows.plans import GateSpec, PatchPlan
from workflows.states import GateEvent, GateState, gate_transition

ENGINE = "patchgate"  # who decides what no person decided
SOAK_ELAPSED = "soak time elapsed"
TIMED_OUT = "no decision before the gate's timeout"


async def transition(
    session: AsyncSession,
    *,
    gate: Gate,
    ring: Ring,
    event: GateEvent,
    by: str,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """Move a gate on by ``event`` and record who decided, when and why."""
    before = gate.state
    gate.state = gate_transition(GateState(gate.state), event).value
    gate.decided_at = now
    gate.decided_by = by
    gate.reason = reason
    await audit.append(
        session,
        kind="gate.state",
        at=now,
        actor=by,
        rollout_id=gate.rollout_id,
        data={
            "gate_id": gate.id,
            "ring": ring.name,
            "kind": gate.kind,  # approvals.csv's gate_kind, for `report verify`
            "from": before,
            "to": gate.state,
            "by": by,
            "reason": reason,
        },
    )


async def open_gate(
    session: AsyncSession,
    *,
    rollout: Rollout,
    ring: Ring,
    spec: GateSpec,
    untested: Sequence[str],
    now: dt.datetime,
) -> Gate:
    """Create the gate before ``ring`` (an automatic one soaks, an approval one expires)
    and audit its opening."""
    kind = GateKind.AUTO if spec.type == "auto" else GateKind.APPROVAL
    gate = Gate(
        rollout_id=rollout.id,
        ring_id=ring.id,
        kind=kind.value,
        quorum=spec.quorum,
        patchset_hash=rollout.patchset_hash,
        untested_platforms=list(untested),
        opened_at=now,
    )
    if kind == GateKind.AUTO:
        gate.soak_until = now + spec.soak
    else:
        gate.expires_at = now + spec.timeout
    await audit.add_audited(
        session,
        gate,
        kind="gate.opened",
        at=now,
        actor=ENGINE,
        rollout_id=rollout.id,
        data=lambda gate: {
            "gate_id": gate.id,
            "ring": ring.name,
            "kind": kind.value,
            "quorum": spec.quorum,
            "patchset_hash": rollout.patchset_hash,
            "untested_platforms": list(untested),
        },
    )
    return gate


async def gate_of_ring(session: AsyncSession, *, ring_id: int) -> Gate | None:
    """The gate before a ring, whatever its state (a ring has at most one)."""
    return await session.scalar(sa.select(Gate).where(Gate.ring_id == ring_id))


async def approve_after_soak(session: AsyncSession, *, gate_id: int, now: dt.datetime) -> bool:
    """Approve an automatic gate whose soak time is over; False if it was no longer open."""
    gate = await session.get(Gate, gate_id, with_for_update=True)
    assert gate is not None
    if gate.state != GateState.OPEN:
        return False
    ring = await session.get(Ring, gate.ring_id)
    assert ring is not None
    await transition(
        session,
        gate=gate,
        ring=ring,
        event=GateEvent.APPROVE,
        by=ENGINE,
        reason=SOAK_ELAPSED,
        now=now,
    )
    return True


async def close_open(
    session: AsyncSession, *, rollout_id: int, reason: str, now: dt.datetime
) -> list[tuple[Gate, Ring]]:
    """Reject the rollout's open gates because the rollout ended; returns them with
    their rings, in the order they were opened."""
    gates = list(
        await session.scalars(
            sa.select(Gate)
            .where(Gate.rollout_id == rollout_id, Gate.state == GateState.OPEN.value)
            .order_by(Gate.id)
        )
    )
    closed = []
    for gate in gates:
        ring = await session.get(Ring, gate.ring_id)
        assert ring is not None
        await transition(
            session, gate=gate, ring=ring, event=GateEvent.REJECT, by=ENGINE, reason=reason, now=now
        )
        closed.append((gate, ring))
    return closed


async def expire_due(session: AsyncSession, *, now: dt.datetime) -> list[int]:
    """Apply ``on_timeout`` to open gates past their expiry. Returns the gates touched."""
    due = (
        await session.scalars(
            sa.select(Gate)
            .where(Gate.state == GateState.OPEN.value, Gate.expires_at <= now)
            .with_for_update()
        )
    ).all()
    touched = []
    for gate in due:
        rollout = await session.get(Rollout, gate.rollout_id)
        ring = await session.get(Ring, gate.ring_id)
        assert rollout is not None and ring is not None
        spec = gate_spec(PatchPlan.model_validate(rollout.plan_snapshot), ring)
        if spec.on_timeout == "escalate" and not gate.escalated:
            gate.escalated = True
            gate.expires_at = now + spec.timeout
            await audit.append(
                session,
                kind="gate.escalated",
                at=now,
                actor=ENGINE,
                rollout_id=rollout.id,
                data={
                    "gate_id": gate.id,
                    "group": spec.escalation_group,
                    "new_expiry": gate.expires_at.isoformat(),
                },
            )
            await outbox.enqueue(
                session,
                **rollout_note(
                    rollout,
                    f"gate:{gate.id}:escalated",
                    f"<!subteam^{spec.escalation_group}> the gate for ring {ring.name} has had no "
                    f"decision; it now expires at {gate.expires_at:%Y-%m-%d %H:%M} UTC",
                    now=now,
                    kind=NoteAbout.GATE_ESCALATED,
                ),
            )
        else:
            await transition(
                session,
                gate=gate,
                ring=ring,
                event=GateEvent.EXPIRE,
                by=ENGINE,
                reason=TIMED_OUT,
                now=now,
            )
        touched.append(gate.id)
    return touched
