"""Rollout decisions through the API: start, approve, reject, pause, resume, abort.

The same domain calls as a Slack click or ``/patch`` command: ``workflows.requests`` for
operator requests (operators from the server's PATCHGATE_OPERATORS), ``workflows.gates``
for votes (the plan's approvers, no self-approval, quorum, one vote each, the patch-set
hash shown). Refusals are audited by the domain and answered 403 (409 when the rollout has
no open gate).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.api._bodies import ApproveBody, ControlBody, RejectBody, StartBody
from bot.api._http import Call
from workflows.db import read_only, unit_of_work
from workflows.errors import Conflict, Forbidden, NotFound
from workflows.gates import decide, refuse_without_open_gate
from workflows.models import Decision, Gate, RequestKind, Rollout
from workflows.requests import control_rollout, start_rollout


async def start(call: Call, body: StartBody) -> dict[str, Any]:
    plan = await call.deps.plan(body.plan)
    async with unit_of_work(call.deps.db) as session:
        result = await start_rollout(
            session,
            plan=plan,
            actor=call.actor,
            operators=call.deps.operators,
            now=call.deps.clock.now(),
        )
    if isinstance(result, Forbidden):
        raise result
    return {
        "rollout_id": result.id,
        "plan": plan.name,
        "state": result.state,
        "message": f"rollout #{result.id} of plan {plan.name} scheduled; "
        "the leader (patchgate serve) starts it within a few seconds",
    }


async def _vote(
    call: Call, decision: Decision, shown_hash: str | None, reason: str | None
) -> dict[str, Any]:
    rollout_id = call.row_id("rollout_id", "rollout")
    deps = call.deps
    async with read_only(deps.db) as session:
        exists = await session.get(Rollout, rollout_id) is not None
        gate_id = await session.scalar(
            sa.select(Gate.id).where(Gate.rollout_id == rollout_id, Gate.state == "open")
        )
    async with unit_of_work(deps.db) as session:
        if gate_id is None:  # no open gate, or no such rollout: refused and audited
            refusal = await refuse_without_open_gate(
                session, rollout_id=rollout_id, actor=call.actor, now=deps.clock.now()
            )
        else:
            outcome = await decide(
                session,
                gate_id=gate_id,
                actor=call.actor,
                decision=decision,
                shown_hash=shown_hash,
                reason=reason,
                now=deps.clock.now(),
            )
    if gate_id is None:
        if not exists:
            raise NotFound(refusal.message)
        raise Conflict(refusal.message)
    if not outcome.accepted:
        raise Forbidden(outcome.message)
    user = call.actor.user_id
    return {
        "rollout_id": rollout_id,
        "gate_id": gate_id,
        "gate_state": outcome.gate_state,
        "message": outcome.message.replace(f"<@{user}>", user),
    }


async def approve(call: Call, body: ApproveBody) -> dict[str, Any]:
    return await _vote(call, Decision.APPROVE, body.hash, None)


async def reject(call: Call, body: RejectBody) -> dict[str, Any]:
    # a blank reason is the domain's refusal (audited), as from Slack
    return await _vote(call, Decision.REJECT, None, body.reason)


def control(kind: RequestKind) -> Any:
    async def handle(call: Call, body: ControlBody) -> dict[str, Any]:
        rollout_id = call.row_id("rollout_id", "rollout")
        async with unit_of_work(call.deps.db) as session:
            result = await control_rollout(
                session,
                rollout_id=rollout_id,
                kind=kind,
                actor=call.actor,
                operators=call.deps.operators,
                now=call.deps.clock.now(),
                reason=body.reason,
            )
        if isinstance(result, Forbidden):
            raise result
        return {
            "rollout_id": rollout_id,
            "request_id": result.id,
            "message": f"{kind.value} of rollout #{rollout_id} queued (request #{result.id}); "
            "the leader applies it at the next batch boundary",
        }

    return handle
