"""Driving a rollout ring by ring: pick the ring in progress, open its gate and wait
for the decision, check that the pinned versions can still be installed, start it, then
run its batches, verify it, and move on (or end the rollout).
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa

from workflows import gates, queries, reports
from workflows import schedule as schedules
from workflows.db import read_in_parts, read_only
from workflows.engine._batches import run_batch
from workflows.engine._context import StepContext
from workflows.engine._endings import (
    abort,
    closing_note,
    closing_summary,
    finish,
    gate_closed,
    rollback_ring,
    window_closed,
)
from workflows.engine._halt import halt_running
from workflows.engine._toolassess import tool_assessed
from workflows.engine._transitions import set_ring, set_rollout
from workflows.models import GateKind, HostRun, Ring, Rollout
from workflows.notify import NoteAbout, texts
from workflows.plans import PatchPlan
from workflows.states import (
    GateState,
    HostState,
    RingEvent,
    RingState,
    RolloutEvent,
    RolloutState,
)

# Rings the rollout has passed (a skipped one was empty or its hosts excepted).
_PASSED_RINGS = {RingState.DONE.value, RingState.SKIPPED.value}


async def drive(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """One step of a running rollout: the first ring not yet passed decides what."""
    async with read_only(ctx.db) as session:
        rollout = await session.get(Rollout, rollout_id)
        rings = await queries.rings_of(session, rollout_id=rollout_id)
    assert rollout is not None
    ring = next((r for r in rings if r.state not in _PASSED_RINGS), None)
    if rollout.abort_requested_by and (ring is None or ring.state != RingState.ROLLING_BACK):
        return await abort(ctx, rollout_id, plan, ring)
    if ring is None:
        return await complete(ctx, rollout_id)
    state = RingState(ring.state)
    if state == RingState.PENDING:
        return await ring_pending(ctx, rollout, plan, ring)
    if state == RingState.PATCHING:
        if ring.next_batch >= ring.batch_count:
            async with ctx.tx("ring.verifying") as session:
                fresh_ring = await session.get(Ring, ring.id)
                assert fresh_ring is not None
                await set_ring(ctx, session, fresh_ring, RingEvent.VERIFY)
            return True
        if rollout.hold_reason:
            return False
        if not schedules.window_open(rollout, plan, ctx.now()):
            return await window_closed(ctx, rollout_id, plan)
        return await run_batch(ctx, rollout, plan, ring)
    if state == RingState.VERIFYING:
        async with ctx.tx("ring.done") as session:
            fresh_ring = await session.get(Ring, ring.id)
            fresh = await session.get(Rollout, rollout_id)
            assert fresh_ring is not None and fresh is not None
            await set_ring(ctx, session, fresh_ring, RingEvent.VERIFIED)
            counts = await queries.host_state_counts(session, ring_id=ring.id)
            await ctx.note(
                session,
                fresh,
                f"ring:{ring.position}:done",
                texts.ring_done_text(ring, counts),
                NoteAbout.RING_DONE,
            )
        return True
    if state == RingState.ROLLING_BACK:
        return await rollback_ring(ctx, rollout, plan, ring)
    # failed / rolled_back / rejected rings end the rollout in the same transaction;
    # reaching here means an inconsistent row: end the rollout rather than spin.
    async with ctx.tx("rollout.failed") as session:
        fresh = await session.get(Rollout, rollout_id)
        assert fresh is not None
        await finish(ctx, session, fresh, RolloutEvent.FAILED, reason=texts.ring_inconsistent(ring))
    return True


async def complete(ctx: StepContext, rollout_id: int) -> bool:
    """Every ring passed: the rollout succeeded, or succeeded with failures when hosts
    failed within the budgets; hosts left not fully patched are named in its reason."""
    # Read before the write transaction (every ring passed: the runs are settled, and
    # only this leader writes them): on SQLite a write transaction that read 10,000 runs
    # a part at a time held the write lock that long, and Slack's acks waited for it.
    async with read_only(ctx.db) as session:
        runs = await read_in_parts(
            session, sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
        )
    async with ctx.tx("rollout.succeeded") as session:
        fresh = await session.get(Rollout, rollout_id)
        assert fresh is not None
        failed = sorted(r.host_name for r in runs if r.failure)
        partial = texts.not_fully_patched(sorted(runs, key=lambda r: r.host_name))
        reasons = []
        if failed:
            reasons.append(texts.failures_within_budget(failed))
        if partial:
            reasons.append(texts.not_fully_patched_reason(len(partial)))
        event = RolloutEvent.COMPLETED_WITH_FAILURES if failed else RolloutEvent.COMPLETED
        await set_rollout(ctx, session, fresh, event, reason="; ".join(reasons) or None)
        outcome = "succeeded with failures" if failed else "succeeded"
        await closing_note(
            ctx,
            session,
            fresh,
            await closing_summary(session, fresh, outcome) + texts.not_fully_patched_text(partial),
            NoteAbout.SUCCEEDED,
        )
    return True


async def ring_pending(ctx: StepContext, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
    """Before a ring: its gate (open, wait, pass or stop), then the start."""
    spec = plan.rings[ring.position].gate
    if spec.type != "none":
        async with read_only(ctx.db) as session:
            gate = await gates.gate_of_ring(session, ring_id=ring.id)
        if gate is None:
            if rollout.hold_reason:
                return False
            return await open_gate(ctx, rollout, plan, ring)
        if gate.state == GateState.OPEN:
            if gate.kind == GateKind.AUTO and gate.soak_until and ctx.now() >= gate.soak_until:
                async with ctx.tx("gate.auto_approved") as session:
                    await gates.approve_after_soak(session, gate_id=gate.id, now=ctx.now())
                return True
            return False
        if gate.state in (GateState.REJECTED, GateState.EXPIRED):
            why = texts.gate_refused_why(ring, gate.state, gate.reason)
            await halt_running(ctx, plan, rollout.id, why)
            async with ctx.tx("rollout.rejected") as session:
                fresh = await session.get(Rollout, rollout.id)
                fresh_ring = await session.get(Ring, ring.id)
                assert fresh is not None and fresh_ring is not None
                await set_ring(ctx, session, fresh_ring, RingEvent.REJECT, reason=gate.reason)
                await finish(ctx, session, fresh, RolloutEvent.GATE_REJECTED, reason=why)
                await gate_closed(ctx, session, fresh, gate.id, fresh_ring)
                await closing_note(
                    ctx, session, fresh, texts.stopped_text(rollout.id, why), NoteAbout.REJECTED
                )
            return True
        if rollout.state == RolloutState.AWAITING_APPROVAL:
            async with ctx.tx("gate.passed") as session:
                fresh = await session.get(Rollout, rollout.id)
                assert fresh is not None
                await set_rollout(ctx, session, fresh, RolloutEvent.GATE_APPROVED)
                await gate_closed(ctx, session, fresh, gate.id, ring)
                await ctx.note(
                    session,
                    fresh,
                    f"gate:{gate.id}:passed",
                    texts.gate_passed_text(ring),
                    NoteAbout.GATE_APPROVED,
                )
            return True
    if rollout.hold_reason:
        return False
    unavailable = await check_pinned_available(ctx, rollout, ring, plan)
    async with ctx.tx("ring.started") as session:
        fresh = await session.get(Rollout, rollout.id)
        fresh_ring = await session.get(Ring, ring.id)
        assert fresh is not None and fresh_ring is not None
        if unavailable:
            why = texts.pins_unavailable_why(ring, unavailable)
            await set_ring(ctx, session, fresh_ring, RingEvent.FAIL, reason=why)
            await finish(ctx, session, fresh, RolloutEvent.FAILED, reason=why)
            await closing_note(
                ctx, session, fresh, texts.failed_text(rollout.id, why), NoteAbout.FAILED
            )
            return True
        await set_ring(ctx, session, fresh_ring, RingEvent.START)
        await ctx.note(
            session,
            fresh,
            f"ring:{ring.position}:started",
            texts.ring_started_text(ring),
            NoteAbout.RING_STARTED,
        )
    return True


async def open_gate(ctx: StepContext, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
    """Open the ring's gate, naming the platforms no earlier ring has tested."""
    spec = plan.rings[ring.position].gate
    now = ctx.now()
    async with ctx.tx("gate.opened") as session:
        fresh = await session.get(Rollout, rollout.id)
        assert fresh is not None
        tested = set(
            await session.scalars(
                sa.select(HostRun.platform)
                .join(Ring, Ring.id == HostRun.ring_id)
                .where(
                    HostRun.rollout_id == rollout.id,
                    Ring.position < ring.position,
                    HostRun.state == HostState.HEALTHY.value,
                )
            )
        )
        mine = set(
            await session.scalars(
                sa.select(HostRun.platform).where(
                    HostRun.ring_id == ring.id, HostRun.platform.is_not(None)
                )
            )
        )
        untested = sorted(p for p in mine - tested if p)
        await set_rollout(ctx, session, fresh, RolloutEvent.GATE_OPENED)
        gate = await gates.open_gate(
            session, rollout=fresh, ring=ring, spec=spec, untested=untested, now=now
        )
        if gate.kind == GateKind.APPROVAL:
            assert gate.expires_at is not None
            text = texts.approval_gate_text(
                ring, spec, fresh.patchset_hash, gate.expires_at, untested
            )
        else:
            assert gate.soak_until is not None
            text = texts.auto_gate_text(ring, gate.soak_until)
        text = texts.emergency_label(fresh) + text
        await ctx.note(
            session,
            fresh,
            f"gate:{gate.id}:opened",
            text,
            NoteAbout.GATE_OPENED,
            gate_id=gate.id,
            gate_kind=gate.kind,
            ring=ring.name,
            patchset_hash=fresh.patchset_hash,
            untested_platforms=untested,
            quorum=spec.quorum,
            **await reports.gate_context(session, fresh, ring),
        )
    return True


async def check_pinned_available(
    ctx: StepContext, rollout: Rollout, ring: Ring, plan: PatchPlan
) -> list[str]:
    """Preflight one reachable host per platform of the ring; list pins that are gone.
    Hosts assessed through their backend's tool are not asked over SSH (the tool's
    candidates were taken at the pin; its job reports what it installed)."""
    async with read_only(ctx.db) as session:
        runs = await read_in_parts(
            session,
            sa.select(HostRun)
            .where(HostRun.ring_id == ring.id, HostRun.state == HostState.PENDING.value)
            .order_by(HostRun.batch, HostRun.host_name),
        )
    by_tool = {r.id for _, group in tool_assessed(ctx, plan, runs).values() for r in group}
    runs = [r for r in runs if r.id not in by_tool]
    inventory = await ctx.hosts()
    patchset = rollout.patchset or {}
    seen: set[str] = set()
    unavailable: list[str] = []
    for run in runs:
        platform = run.platform or ""
        host = inventory.get(run.host_name)
        if platform in seen or host is None or not patchset.get(platform):
            continue
        result, error, _ = await ctx.command(
            host,
            "preflight",
            partial(ctx.deps.executor.preflight, host, patchset[platform]),
        )
        if error is not None or result is None:
            continue  # try another host of this platform
        seen.add(platform)
        unavailable.extend(f"{platform}: {item}" for item in result.unavailable)
    return unavailable
