"""Votes on a gate: the approval rules (who may decide, quorum, separation of duties,
the patch set shown) applied to one person's decision. Every refusal is an audit event
and changes nothing else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.errors import NotFound
from workflows.gates._lifecycle import transition
from workflows.gates._rules import (
    MIN_HASH_PREFIX,
    Actor,
    Outcome,
    gate_spec,
    has_power,
    hash_matches,
)
from workflows.models import Approval, Decision, Gate, GateKind, Ring, Rollout
from workflows.notify import NoteAbout, rollout_note, texts
from workflows.plans import PatchPlan
from workflows.states import GateEvent, GateState


async def _refuse(
    session: AsyncSession, *, gate: Gate, actor: Actor, why: str, now: dt.datetime
) -> Outcome:
    await audit.append(
        session,
        kind="gate.refused",
        at=now,
        actor=actor.user_id,
        rollout_id=gate.rollout_id,
        data={"gate_id": gate.id, "reason": why, "source": actor.source},
    )
    return Outcome(False, why, gate.state)


async def refuse_without_open_gate(
    session: AsyncSession, *, rollout_id: int, actor: Actor, now: dt.datetime
) -> Outcome:
    """A decision by rollout number (``/patch approve|reject``, the CLI) when the rollout
    has no open gate (already decided, expired, or not yet open) or does not exist:
    audited like the other refusals, with no gate to name.

    A rollout that does not exist is not named in the event's ``rollout_id`` column (a
    later rollout may get that number and must not inherit the refusal); the number
    asked for is in the event's data and its reason."""
    exists = await session.get(Rollout, rollout_id) is not None
    if exists:
        why = f"rollout {rollout_id} has no open gate"
        data: dict[str, Any] = {"gate_id": None, "reason": why, "source": actor.source}
    else:
        why = f"rollout {rollout_id} does not exist"
        data = {"gate_id": None, "rollout_id": rollout_id, "reason": why, "source": actor.source}
    await audit.append(
        session,
        kind="gate.refused",
        at=now,
        actor=actor.user_id,
        rollout_id=rollout_id if exists else None,
        data=data,
    )
    return Outcome(False, why)


async def decide(
    session: AsyncSession,
    *,
    gate_id: int,
    actor: Actor,
    decision: Decision,
    shown_hash: str | None,
    reason: str | None,
    now: dt.datetime,
) -> Outcome:
    """Record one person's vote on a gate, in the caller's transaction."""
    gate = await session.get(Gate, gate_id, with_for_update=True)
    if gate is None:
        raise NotFound(f"gate {gate_id} does not exist")
    rollout = await session.get(Rollout, gate.rollout_id)
    ring = await session.get(Ring, gate.ring_id)
    assert rollout is not None and ring is not None
    plan = PatchPlan.model_validate(rollout.plan_snapshot)
    spec = gate_spec(plan, ring)

    if gate.state != GateState.OPEN:
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why=f"gate {gate.id} is already {gate.state}; nothing changed",
        )
    if gate.expires_at is not None and now >= gate.expires_at:
        return await _refuse(
            session, gate=gate, actor=actor, now=now, why=f"gate {gate.id} has expired"
        )
    if gate.kind != GateKind.APPROVAL:
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why=f"gate {gate.id} is an automatic gate; it needs no votes",
        )
    approvers = spec.approvers
    listed = frozenset(
        (approvers.users if approvers else []) + (approvers.groups if approvers else [])
    )
    if not has_power(actor, listed):
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why=f"{actor.user_id} is not an approver for ring {ring.name!r}",
        )
    if (
        decision == Decision.APPROVE
        and actor.user_id == rollout.requested_by
        and not spec.allow_requester
    ):
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why="the rollout's requester may not approve it",
        )
    if decision == Decision.APPROVE and not hash_matches(shown_hash, gate.patchset_hash):
        shown = (shown_hash or "").strip()
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why=f"approval refused: patch-set hash prefix too short "
            f"(need {MIN_HASH_PREFIX} characters, got {len(shown)})"
            if shown and len(shown) < MIN_HASH_PREFIX
            else f"approval refused: it is for patch set {shown_hash or '(none)'}, "
            f"but the gate is for {(gate.patchset_hash or '')[:12]}",
        )
    if decision == Decision.REJECT and not (reason and reason.strip()):
        return await _refuse(
            session, gate=gate, actor=actor, now=now, why="a rejection needs a reason"
        )
    existing = await session.scalar(
        sa.select(Approval).where(Approval.gate_id == gate.id, Approval.user_id == actor.user_id)
    )
    if existing is not None:
        return await _refuse(
            session,
            gate=gate,
            actor=actor,
            now=now,
            why=f"{actor.user_id} has already voted on gate {gate.id}",
        )

    session.add(
        Approval(
            gate_id=gate.id,
            user_id=actor.user_id,
            decision=decision.value,
            patchset_hash=gate.patchset_hash,
            reason=reason,
            source=actor.source,
            created_at=now,
        )
    )
    await session.flush()
    data: dict[str, Any] = {
        "gate_id": gate.id,
        "ring": ring.name,
        "decision": decision.value,
        "patchset_hash": gate.patchset_hash,
        "source": actor.source,
    }
    if reason:
        data["reason"] = reason
    await audit.append(
        session, kind="gate.vote", at=now, actor=actor.user_id, rollout_id=rollout.id, data=data
    )

    if decision == Decision.REJECT:
        await transition(
            session,
            gate=gate,
            ring=ring,
            event=GateEvent.REJECT,
            by=actor.user_id,
            reason=reason,
            now=now,
        )
        said = texts.mrkdwn(reason)
        message = f"Gate for ring {ring.name} rejected by <@{actor.user_id}>: {said}"
    else:
        votes = (
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(Approval)
                .where(
                    Approval.gate_id == gate.id,
                    Approval.decision == Decision.APPROVE.value,
                    Approval.patchset_hash == gate.patchset_hash,
                )
            )
            or 0
        )
        if votes >= gate.quorum:
            await transition(
                session,
                gate=gate,
                ring=ring,
                event=GateEvent.APPROVE,
                by=actor.user_id,
                reason=None,
                now=now,
            )
            message = f"Gate for ring {ring.name} approved ({votes}/{gate.quorum})"
        else:
            message = (
                f"<@{actor.user_id}> approved ring {ring.name} ({votes}/{gate.quorum}); "
                "waiting for more approvals"
            )
    await outbox.enqueue(
        session,
        **rollout_note(
            rollout,
            f"gate:{gate.id}:vote:{actor.user_id}",
            message,
            now=now,
            kind=NoteAbout.GATE_VOTE,
        ),
    )
    return Outcome(True, message, gate.state)
