"""How a rollout waits or ends: its window closing (wait for the next, or abort) and
opening again, an abort, a ring's rollback, and the one ending every path goes
through (:func:`finish`: skip what never ran, close open gates, settle the rollout).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import gates, outbox, queries, reports, tickets
from workflows import notify as notifications
from workflows import schedule as schedules
from workflows.db import read_only
from workflows.engine._context import StepContext
from workflows.engine._halt import halt_running
from workflows.engine._rollbacks import rollback_runs
from workflows.engine._stuck import HostStepFailed, count
from workflows.engine._transitions import set_host, set_ring, set_rollout
from workflows.models import Approval, Decision, Gate, GateKind, HostRun, Ring, Rollout
from workflows.notify import NoteAbout, texts
from workflows.plans import PatchPlan
from workflows.states import (
    ROLLOUT_ACTIVE_VALUES,
    HostEvent,
    HostState,
    RingEvent,
    RingState,
    RolloutEvent,
)


async def window_closed(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """The rollout's window has (nearly) ended: wait for the next one, or abort."""
    aborting = bool(plan.schedule and plan.schedule.on_window_end == "abort")
    if aborting:
        await halt_running(ctx, plan, rollout_id, "aborted: its window closed")
    async with ctx.tx("rollout.window_closed") as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        text = schedules.window_closed_text(rollout, plan, abort=aborting)
        if aborting:
            await finish(ctx, session, rollout, RolloutEvent.ABORT, reason=text)
            await ctx.note(session, rollout, "finished", text, NoteAbout.ABORTED)
        else:
            await set_rollout(ctx, session, rollout, RolloutEvent.WINDOW_CLOSED)
            end = rollout.window_end.isoformat() if rollout.window_end else "none"
            await ctx.note(session, rollout, f"window-closed:{end}", text, NoteAbout.WAITING)
    return True


async def window_opened(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """A rollout that waited for its next window goes on."""
    async with ctx.tx("rollout.window_opened") as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        await set_rollout(ctx, session, rollout, RolloutEvent.WINDOW_OPENED)
    return True


async def rollback_ring(ctx: StepContext, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
    """Roll back every changed host of the ring, then end the rollout."""
    async with read_only(ctx.db) as session:
        runs = list(
            await session.scalars(
                sa.select(HostRun).where(
                    HostRun.ring_id == ring.id,
                    HostRun.state.in_(
                        [
                            HostState.HEALTHY.value,
                            HostState.FAILED.value,
                            HostState.UNHEALTHY.value,
                            HostState.ROLLING_BACK.value,
                        ]
                    ),
                    HostRun.before_versions.is_not(None),
                )
            )
        )
    inventory = await ctx.hosts()
    await rollback_runs(ctx, plan, ring, runs, inventory, scope="ring")
    async with ctx.tx("ring.rolled_back") as session:
        fresh = await session.get(Rollout, rollout.id)
        fresh_ring = await session.get(Ring, ring.id)
        assert fresh is not None and fresh_ring is not None
        await set_ring(ctx, session, fresh_ring, RingEvent.ROLLED_BACK)
        await finish(
            ctx,
            session,
            fresh,
            RolloutEvent.ROLLED_BACK,
            reason=fresh.reason or texts.ring_rolled_back_why(ring),
        )
        await closing_note(
            ctx,
            session,
            fresh,
            await closing_summary(session, fresh, "rolled back"),
            NoteAbout.ROLLED_BACK,
        )
    return True


async def abort(ctx: StepContext, rollout_id: int, plan: PatchPlan, ring: Ring | None) -> bool:
    """Stop at this batch boundary (rolling back the last batch if the plan says so),
    halting first any job of the rollout its tool is still running."""
    async with read_only(ctx.db) as session:
        current = await session.get(Rollout, rollout_id)
        assert current is not None
        halt_why = texts.abort_why(current)
    await halt_running(ctx, plan, rollout_id, halt_why)
    if (
        plan.rollback.on_abort
        and ring is not None
        and ring.state == RingState.PATCHING
        and ring.next_batch > 0
    ):
        async with read_only(ctx.db) as session:
            runs = list(
                await session.scalars(
                    sa.select(HostRun).where(
                        HostRun.ring_id == ring.id,
                        HostRun.batch == ring.next_batch - 1,
                        HostRun.state.in_([HostState.HEALTHY.value, HostState.ROLLING_BACK.value]),
                        HostRun.before_versions.is_not(None),
                    )
                )
            )
        inventory = await ctx.hosts()
        await rollback_runs(ctx, plan, ring, runs, inventory, scope="abort", concurrent=False)
    async with ctx.tx("rollout.aborted") as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        why = texts.abort_why(rollout)
        await finish(ctx, session, rollout, RolloutEvent.ABORT, reason=why)
        await closing_note(
            ctx, session, rollout, texts.aborted_text(rollout_id, why), NoteAbout.ABORTED
        )
    return True


async def finish(
    ctx: StepContext, session: AsyncSession, rollout: Rollout, event: RolloutEvent, *, reason: str
) -> None:
    """End a rollout: skip what never ran, close open gates, then the rollout itself."""
    for ring in await queries.rings_of(session, rollout_id=rollout.id):
        if ring.state in (RingState.PENDING, RingState.PATCHING):
            await set_ring(ctx, session, ring, RingEvent.SKIP, reason=reason)
    pending = list(
        await session.scalars(
            sa.select(HostRun).where(
                HostRun.rollout_id == rollout.id, HostRun.state == HostState.PENDING.value
            )
        )
    )
    for run in pending:
        await set_host(ctx, session, run, HostEvent.SKIP, error=texts.stopped_host_error(reason))
    closed = await gates.close_open(session, rollout_id=rollout.id, reason=reason, now=ctx.now())
    for gate, gate_ring in closed:
        await gate_closed(ctx, session, rollout, gate.id, gate_ring)
    await set_rollout(ctx, session, rollout, event, reason=reason)
    if event == RolloutEvent.GATE_REJECTED:
        await tickets.on_gate_rejected(session, rollout=rollout, reason=reason, now=ctx.now())


async def closing_note(
    ctx: StepContext, session: AsyncSession, rollout: Rollout, text: str, about: NoteAbout
) -> None:
    """The rollout's closing note in its thread, with the summary's facts."""
    summary = await reports.summary_facts(session, rollout)
    await ctx.note(session, rollout, "finished", text, about, summary=summary)


async def gate_closed(
    ctx: StepContext, session: AsyncSession, rollout: Rollout, gate_id: int, ring: Ring
) -> None:
    """Have the readiness message show the gate's decision instead of its buttons."""
    gate = await session.get(Gate, gate_id)
    if gate is None or gate.kind != GateKind.APPROVAL:
        return
    voters = list(
        await session.scalars(
            sa.select(Approval.user_id)
            .where(Approval.gate_id == gate.id, Approval.decision == Decision.APPROVE.value)
            .order_by(Approval.id)
        )
    )
    await outbox.enqueue(
        session,
        **notifications.gate_closed(rollout, gate, ring, approvers=voters, now=ctx.now()),
    )


async def closing_summary(session: AsyncSession, rollout: Rollout, outcome: str) -> str:
    """The closing note of a rollout that succeeded or was rolled back."""
    counts = await queries.host_state_counts(session, rollout_id=rollout.id)
    return texts.summary_text(rollout, outcome, counts)


async def give_up_rollout(ctx: StepContext, rollout_id: int, error: BaseException) -> bool:
    """Count a failed step of this rollout; at the limit fail its ring in progress and
    the rollout, alert on-call and file a ticket."""
    key = f"rollout:{rollout_id}"
    if isinstance(error, HostStepFailed):
        return False  # counted for its host
    tries = count(ctx, key)
    if tries < ctx.deps.step_retry_limit:
        return False
    async with ctx.tx("rollout.gave_up") as session:
        rollout = await session.get(Rollout, rollout_id)
        if rollout is None or rollout.state not in ROLLOUT_ACTIVE_VALUES:
            return False
        rings = await queries.rings_of(session, rollout_id=rollout_id)
        ring = next(
            (
                r
                for r in rings
                if r.state in (RingState.PENDING, RingState.PATCHING, RingState.VERIFYING)
            ),
            None,
        )
        what = f"ring {ring.name}" if ring is not None else f"rollout #{rollout_id}"
        why = texts.gave_up_text(what, tries, error)
        await ctx.event(session, "rollout.gave_up", rollout_id, tries=tries, error=why)
        if ring is not None:
            await set_ring(ctx, session, ring, RingEvent.FAIL, reason=why)
        await finish(ctx, session, rollout, RolloutEvent.FAILED, reason=why)
        alert_ring = ring or (rings[0] if rings else None)
        if alert_ring is not None:
            await outbox.enqueue(
                session,
                **notifications.rollback_alert(
                    rollout,
                    alert_ring,
                    f"Rollout #{rollout.id} of plan {rollout.plan_name}: {why}",
                    now=ctx.now(),
                    hosts=[],
                    key=f"rollout:{rollout.id}:alert:gave-up",
                ),
            )
        await tickets.on_engine_gave_up(session, rollout=rollout, reason=why, now=ctx.now())
        await closing_note(
            ctx, session, rollout, texts.failed_text(rollout_id, why), NoteAbout.FAILED
        )
    ctx.step_failures.pop(key, None)
    return True
