"""One batch of a ring: take the hosts' leases (a host is patched by one rollout at a
time), work every host of the batch to a settled state, then count the ring's failures
against its budget and either go on, roll the ring back, or fail the rollout.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from workflows import notify as notifications
from workflows import outbox, queries, tickets
from workflows.backends import DEFAULT_BACKEND
from workflows.db import in_parts, read_only
from workflows.engine._backend import Resolved, resolve
from workflows.engine._batchwork import work_batch
from workflows.engine._context import StepContext
from workflows.engine._endings import closing_note, finish
from workflows.engine._halt import halt_running
from workflows.engine._hosts import finish_all, work_host
from workflows.engine._oncall import alert_left_broken
from workflows.engine._transitions import set_host, set_ring
from workflows.models import HostLease, HostRun, Ring, Rollout
from workflows.notify import NoteAbout, texts
from workflows.plans import PatchPlan
from workflows.states import HostEvent, HostState, RingEvent, RingState, RolloutEvent

READ_CHUNK = 1000  # host runs per query when a batch's runs are read at once


async def run_batch(ctx: StepContext, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
    """Patch the ring's next batch and weigh its failures against the budget."""
    number = ring.next_batch
    async with read_only(ctx.db) as session:
        run_ids = list(
            await session.scalars(
                sa.select(HostRun.id)
                .where(HostRun.ring_id == ring.id, HostRun.batch == number)
                .order_by(HostRun.host_name)
            )
        )
    try:
        leased = await take_leases(ctx, rollout, plan, ring, run_ids)
    except IntegrityError:
        # Another rollout took one of these leases at the same moment (PostgreSQL,
        # read committed): nothing was written. Its leases are committed now, so a
        # second look sees them and waits or skips as the plan says.
        try:
            leased = await take_leases(ctx, rollout, plan, ring, run_ids)
        except IntegrityError:
            return False
    if not leased:
        return False
    inventory = await ctx.hosts()
    patchset = rollout.patchset or {}
    per_host, batches = await split_by_backend(ctx, plan, run_ids)
    await read_runs(ctx, per_host)
    await finish_all(
        [
            *(work_host(ctx, run_id, plan, patchset, inventory) for run_id in per_host),
            *(
                work_batch(ctx, rollout, plan, ring, backend, ids, inventory)
                for backend, ids in batches
            ),
        ]
    )
    spent: str | None = None
    async with ctx.tx("batch.done") as session:
        fresh = await session.get(Rollout, rollout.id)
        fresh_ring = await session.get(Ring, ring.id)
        assert fresh is not None and fresh_ring is not None
        if fresh_ring.state != RingState.PATCHING or fresh_ring.next_batch != number:
            return True  # already recorded before a restart
        batch_runs = await queries.runs_by_id(session, run_ids=run_ids)
        for part in in_parts(r.host_name for r in batch_runs):
            await session.execute(
                sa.delete(HostLease).where(
                    HostLease.rollout_id == rollout.id, HostLease.host_name.in_(part)
                )
            )
        failures = (
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(HostRun)
                .where(HostRun.ring_id == ring.id, HostRun.failure.is_(True))
            )
            or 0
        )
        await alert_left_broken(ctx, session, fresh, fresh_ring, number, batch_runs, plan)
        summary = texts.batch_summary(ring, number, batch_runs, failures, ring.failure_budget)
        await ctx.note(
            session,
            fresh,
            f"ring:{ring.position}:batch:{number}",
            summary,
            NoteAbout.BATCH_DONE,
            failures=failures,
        )
        if failures > fresh_ring.failure_budget:
            why = texts.budget_exceeded_why(ring, failures, fresh_ring.failure_budget)
            await set_ring(ctx, session, fresh_ring, RingEvent.FAIL, reason=why)
            if plan.rollback.ring_on_budget_exceeded:
                await set_ring(ctx, session, fresh_ring, RingEvent.ROLLBACK)
                fresh.reason = why
                failed = [
                    r.host_name
                    for r in await session.scalars(
                        sa.select(HostRun).where(
                            HostRun.ring_id == ring.id, HostRun.failure.is_(True)
                        )
                    )
                ]
                await outbox.enqueue(
                    session,
                    **notifications.rollback_alert(
                        fresh,
                        fresh_ring,
                        texts.rollback_alert_text(rollout, ring, why, failed),
                        now=ctx.now(),
                        hosts=failed,
                        tickets=await tickets.ring_tickets(session, ring_id=fresh_ring.id),
                    ),
                )
            else:
                await finish(ctx, session, fresh, RolloutEvent.FAILED, reason=why)
                await closing_note(
                    ctx, session, fresh, texts.failed_text(rollout.id, why), NoteAbout.FAILED
                )
            spent = why
        else:
            fresh_ring.next_batch = number + 1
    if spent is not None:  # the batch's jobs are done; any other still running is halted
        await halt_running(ctx, plan, rollout.id, spent)
    return True


async def read_runs(ctx: StepContext, run_ids: Sequence[int]) -> None:
    """Read the batch's host runs at once (a few queries, not one per host): each host's
    first step goes on from its row here (``StepContext.committed_runs``)."""
    async with ctx.read() as session:
        for start in range(0, len(run_ids), READ_CHUNK):
            part = run_ids[start : start + READ_CHUNK]
            for run in await queries.runs_by_id(session, run_ids=part):
                ctx.committed_runs[run.id] = run


async def split_by_backend(
    ctx: StepContext, plan: PatchPlan, run_ids: Sequence[int]
) -> tuple[list[int], list[tuple[Resolved, list[int]]]]:
    """The batch's runs on per-host backends (today's path), and those of each batch
    backend (one job per backend)."""
    async with read_only(ctx.db) as session:
        rows = [
            row
            for part in in_parts(run_ids)
            for row in await session.execute(
                sa.select(HostRun.id, HostRun.backend).where(HostRun.id.in_(part))
            )
        ]
    per_host: list[int] = []
    grouped: dict[str, list[int]] = {}
    resolved: dict[str, Resolved] = {}
    for run_id, name in sorted(rows):
        backend = resolved.setdefault(
            name or DEFAULT_BACKEND, resolve(ctx, plan, name or DEFAULT_BACKEND)
        )
        if backend.batch is None:
            per_host.append(run_id)
        else:
            grouped.setdefault(backend.name, []).append(run_id)
    return per_host, [(resolved[n], ids) for n, ids in sorted(grouped.items())]


async def take_leases(
    ctx: StepContext, rollout: Rollout, plan: PatchPlan, ring: Ring, run_ids: Sequence[int]
) -> bool:
    """Take the host leases for a batch: all or nothing (wait), or skip busy hosts."""
    async with ctx.tx("batch.leased") as session:
        runs = await queries.runs_by_id(session, run_ids=run_ids)
        names = [
            r.host_name
            for r in runs
            if r.state not in (HostState.SKIPPED, HostState.EXCEPTED, HostState.UNREACHABLE)
        ]
        held = {
            lease.host_name: lease.rollout_id
            for part in in_parts(names)
            for lease in await session.scalars(
                sa.select(HostLease).where(HostLease.host_name.in_(part))
            )
        }
        busy = {n: rid for n, rid in held.items() if rid != rollout.id}
        if busy and plan.lease_conflict == "wait":
            key = (rollout.id, ring.next_batch)
            if key not in ctx.lease_waits:
                ctx.lease_waits.add(key)
                await ctx.event(
                    session, "batch.waiting_for_lease", rollout.id, ring=ring.name, busy=busy
                )
                fresh = await session.get(Rollout, rollout.id)
                assert fresh is not None
                await ctx.note(
                    session,
                    fresh,
                    f"ring:{ring.position}:batch:{ring.next_batch}:waiting",
                    texts.lease_waiting_text(busy),
                    NoteAbout.BATCH_WAITING,
                )
            return False
        for run in runs:
            if run.host_name in busy:
                await set_host(
                    ctx,
                    session,
                    run,
                    HostEvent.SKIP,
                    error=texts.lease_skipped_error(busy[run.host_name]),
                )
        for name in names:
            if name not in held:
                session.add(HostLease(host_name=name, rollout_id=rollout.id, acquired_at=ctx.now()))
    return True
