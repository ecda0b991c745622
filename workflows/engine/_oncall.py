"""On-call for hosts a tool left broken (issue 20).

A host that fails (its apply, or its health after it) on a backend that cannot roll
back (Satellite, Automox) stays as the tool left it: no automatic rollback will page
on-call for it, and a ticket alone waits for office hours. So once per batch and
backend, when the batch is weighed against its budget, one alert goes to the on-call
channel (the rollback alert's path: ``rollout.alert`` through the outbox) naming the
hosts, the tool and its apply job (id and key). One per batch, not one per host: a
batch of fifty failed hosts is one page, with the first hosts named and a count.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import notify as notifications
from workflows import outbox, tickets
from workflows.engine._backend import resolve, run_backend
from workflows.engine._context import StepContext
from workflows.errors import ConfigError
from workflows.models import BackendJob, HostRun, Ring, Rollout
from workflows.notify import texts
from workflows.plans import PatchPlan


async def alert_left_broken(
    ctx: StepContext,
    session: AsyncSession,
    rollout: Rollout,
    ring: Ring,
    batch: int,
    runs: Sequence[HostRun],
    plan: PatchPlan,
) -> None:
    """One on-call alert per batch backend that cannot roll back and failed hosts."""
    broken: dict[str, list[HostRun]] = {}
    for run in runs:
        if not run.failure:
            continue
        name = run_backend(run)
        try:
            backend = resolve(ctx, plan, name)
        except ConfigError:
            continue
        if backend.batch is not None and not backend.caps.rollback:
            broken.setdefault(name, []).append(run)
    if not broken:
        return
    ring_tickets = await tickets.ring_tickets(session, ring_id=ring.id)
    for name, failed in sorted(broken.items()):
        jobs = list(
            await session.scalars(
                sa.select(BackendJob)
                .where(
                    BackendJob.rollout_id == rollout.id,
                    BackendJob.ring_id == ring.id,
                    BackendJob.batch == batch,
                    BackendJob.backend == name,
                    BackendJob.action == "apply",
                )
                .order_by(BackendJob.id)
            )
        )
        hosts = sorted(r.host_name for r in failed)
        text = texts.left_broken_alert_text(
            rollout,
            ring,
            batch,
            name,
            [(r.host_name, r.error or r.state) for r in sorted(failed, key=lambda r: r.host_name)],
            [(j.job_id or "not submitted", j.key) for j in jobs],
        )
        await outbox.enqueue(
            session,
            **notifications.rollback_alert(
                rollout,
                ring,
                text,
                now=ctx.now(),
                hosts=hosts,
                tickets=ring_tickets,
                key=notifications.left_broken_alert_key(rollout.id, ring.position, batch, name),
            ),
        )
        await ctx.event(
            session,
            "host.oncall_alert",
            rollout.id,
            backend=name,
            ring=ring.name,
            batch=batch,
            hosts=hosts,
            jobs=[j.job_id for j in jobs],
        )
