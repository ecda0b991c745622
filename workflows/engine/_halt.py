"""Stopping a backend's jobs when the rollout stops (issue 20): a gate rejected, the
failure budget spent, or the rollout aborted. Every job of the rollout the tool is still
running (a ``backend_jobs`` row submitted and not done) on a backend that declares
``halt`` is halted through :meth:`~workflows.backends.HaltBackend.halt`; each attempt is
audited (``backend.job.halt``: backend, key, the tool's job id, the reason, and whether
it was halted or why not). A halt that fails is audited and stops nothing else: the
abort, the rejection or the budget's ending goes on.

While the engine follows an apply job it asks, between two answers of the tool,
whether the rollout is being aborted (asked for, even before the next tick applies the
request) or the ring's budget is spent (by the batch's hosts on another backend); if
so it halts that job and follows it to its end (the tool reports the hosts it stopped),
so an abort does not wait for a long job to finish.

A job intended but never submitted has no id in the tool: nothing to halt. A backend
that cannot halt lets its job run to its end (audited once, ``halted: false``).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import sqlalchemy as sa

from workflows.backends import HaltBackend, JobRef
from workflows.engine._backend import Resolved, resolve
from workflows.engine._context import StepContext
from workflows.errors import ConfigError
from workflows.models import (
    BackendJob,
    HostRun,
    JobState,
    Request,
    RequestKind,
    RequestState,
    Ring,
    Rollout,
)
from workflows.notify import texts
from workflows.plans import PatchPlan

log = logging.getLogger("patchgate.engine")


async def halt_running(ctx: StepContext, plan: PatchPlan, rollout_id: int, reason: str) -> None:
    """Halt every job of the rollout still running in its tool (see the module)."""
    async with ctx.read() as session:
        jobs = list(
            await session.scalars(
                sa.select(BackendJob)
                .where(
                    BackendJob.rollout_id == rollout_id,
                    BackendJob.state == JobState.SUBMITTED.value,
                    BackendJob.job_id.is_not(None),
                )
                .order_by(BackendJob.id)
            )
        )
    for job in jobs:
        try:
            backend = resolve(ctx, plan, job.backend)
        except ConfigError as exc:
            await _audit(ctx, job, reason, halted=False, error=str(exc))
            continue
        await halt_job(ctx, backend, job, reason)


async def halt_job(ctx: StepContext, backend: Resolved, job: BackendJob, reason: str) -> None:
    """Halt one running job (once per engine: the tool's halt is idempotent, the audit
    need not repeat)."""
    if job.key in ctx.halted_jobs or job.job_id is None:
        return
    ctx.halted_jobs.add(job.key)
    if not backend.caps.halt or backend.batch is None:
        await _audit(
            ctx,
            job,
            reason,
            halted=False,
            note=f"backend {backend.name} cannot stop a running job; it runs to its end",
        )
        return
    ref = JobRef(backend=backend.name, job_id=job.job_id, key=job.key)
    try:
        await cast(HaltBackend, backend.batch).halt(ref, backend.options, reason=reason)
    except Exception as exc:  # audited; never blocks the ending
        log.warning(
            "%s job %s (%s) could not be halted: %s", backend.name, ref.job_id, job.key, exc
        )
        await _audit(ctx, job, reason, halted=False, error=f"{type(exc).__name__}: {exc}"[:500])
        return
    await _audit(ctx, job, reason, halted=True)


async def stop_reason(ctx: StepContext, ring: Ring) -> str | None:
    """Why a job of this ring still running should be halted now: the rollout is being
    aborted, or the ring's failure budget is spent; None to let it run."""
    async with ctx.read() as session:
        rollout = await session.get(Rollout, ring.rollout_id)
        if rollout is not None and rollout.abort_requested_by:
            return texts.abort_why(rollout)
        # An abort asked for while this step follows the job (applied at the next tick).
        asked = await session.scalar(
            sa.select(Request)
            .where(
                Request.rollout_id == ring.rollout_id,
                Request.kind == RequestKind.ABORT.value,
                Request.state == RequestState.PENDING.value,
            )
            .order_by(Request.id)
            .limit(1)
        )
        if asked is not None:
            reason = asked.payload.get("reason") if isinstance(asked.payload, dict) else None
            return f"aborted by {asked.requested_by}" + (f": {reason}" if reason else "")
        failures = (
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(HostRun)
                .where(HostRun.ring_id == ring.id, HostRun.failure.is_(True))
            )
            or 0
        )
    if failures > ring.failure_budget:
        return texts.budget_exceeded_why(ring, failures, ring.failure_budget)
    return None


async def _audit(ctx: StepContext, job: BackendJob, reason: str, **outcome: Any) -> None:
    async with ctx.tx("backend.job.halt") as session:
        await ctx.event(
            session,
            "backend.job.halt",
            job.rollout_id,
            backend=job.backend,
            action=job.action,
            key=job.key,
            job_id=job.job_id,
            reason=reason,
            **outcome,
        )
