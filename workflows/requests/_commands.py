"""Requests from the faces (CLI, Slack) to the leader, and who may make them.

Starting a rollout writes the rollout row in ``scheduled`` (the leader's engine picks it
up); pause, resume and abort write a request row that the engine applies at its next
tick, at a batch boundary. Authorisation is checked here, and refusals are audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, queries
from workflows.errors import Conflict, Forbidden, NotFound
from workflows.gates import Actor, has_power
from workflows.models import Request, RequestKind, RequestState, Rollout
from workflows.plans import PatchPlan, plan_hash
from workflows.states import ROLLOUT_SETTLED_VALUES, RolloutState


async def refuse(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    why: str,
    now: dt.datetime,
    rollout_id: int | None = None,
) -> Forbidden:
    await audit.append(
        session,
        kind="request.refused",
        at=now,
        actor=actor.user_id,
        rollout_id=rollout_id,
        data={"action": action, "reason": why, "source": actor.source},
    )
    return Forbidden(why)


async def start_rollout(
    session: AsyncSession,
    *,
    plan: PatchPlan,
    actor: Actor,
    operators: frozenset[str],
    now: dt.datetime,
    emergency: bool = False,
    cve: str | None = None,
) -> Rollout | Forbidden:
    """Create a scheduled rollout of ``plan``. Returns Forbidden (already audited) if refused.

    The refusal is returned, not raised, so the caller can commit the audit event.
    """
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="start",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    active = await queries.active_rollout_ids(session, plan_name=plan.name)
    if active:
        raise Conflict(f"plan {plan.name!r} already has an active rollout (#{active[0]})")
    return await create_rollout(
        session,
        plan=plan,
        requested_by=actor.user_id,
        source=actor.source,
        now=now,
        emergency=emergency,
        cve=cve,
    )


async def control_rollout(
    session: AsyncSession,
    *,
    rollout_id: int,
    kind: RequestKind,
    actor: Actor,
    operators: frozenset[str],
    now: dt.datetime,
    reason: str | None = None,
) -> Request | Forbidden:
    """Queue a pause, resume or abort for the leader. Returns Forbidden if refused."""
    if kind not in (RequestKind.PAUSE, RequestKind.RESUME, RequestKind.ABORT):
        raise ValueError(kind)
    rollout = await session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} does not exist")
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action=kind.value,
            now=now,
            rollout_id=rollout_id,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    if rollout.state in ROLLOUT_SETTLED_VALUES:
        raise Conflict(f"rollout {rollout_id} is already {rollout.state}")
    payload: dict[str, Any] = {"reason": reason} if reason else {}
    request = Request(
        kind=kind.value,
        rollout_id=rollout_id,
        payload=payload,
        requested_by=actor.user_id,
        source=actor.source,
        created_at=now,
        state=RequestState.PENDING.value,
    )
    await audit.add_audited(
        session,
        request,
        kind="request.queued",
        at=now,
        actor=actor.user_id,
        rollout_id=rollout_id,
        data=lambda request: {
            "request_id": request.id,
            "action": kind.value,
            "reason": reason,
            "source": actor.source,
        },
    )
    return request


async def create_rollout(
    session: AsyncSession,
    *,
    plan: PatchPlan,
    requested_by: str,
    source: str,
    now: dt.datetime,
    emergency: bool = False,
    cve: str | None = None,
    window_end: dt.datetime | None = None,
    audit_data: dict[str, Any] | None = None,
) -> Rollout:
    """Write a scheduled rollout of ``plan`` and its audit event (no authorisation here:
    callers check it). ``audit_data`` adds to or overrides the event's fields."""
    rollout = Rollout(
        plan_name=plan.name,
        plan_hash=plan_hash(plan),
        plan_snapshot=plan.model_dump(mode="json"),
        requested_by=requested_by,
        source=source,
        emergency=emergency,
        emergency_cve=cve,
        state=RolloutState.SCHEDULED.value,
        window_end=window_end,
        created_at=now,
    )
    session.add(rollout)
    await session.flush()
    data: dict[str, Any] = {
        "plan": plan.name,
        "plan_hash": rollout.plan_hash,
        "emergency": emergency,
        "source": source,
    }
    if cve is not None:
        data["cve"] = cve
    data.update(audit_data or {})
    await audit.append(
        session,
        kind="rollout.requested",
        at=now,
        actor=requested_by,
        rollout_id=rollout.id,
        data=data,
    )
    return rollout
