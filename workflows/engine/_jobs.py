"""A batch backend's job, with the engine's guarantees (issue 19).

One job per (rollout, ring, scope, backend, action), named by its key
(:func:`workflows.backends.job_key`):

1. intent: the ``backend_jobs`` row (state ``intended``) and the hosts' own intent (e.g.
   ``applying`` with ``op_id`` = the key) in one transaction; kill point
   ``job.<action>.intent``;
2. submit: unless this engine wrote the intent just now, :meth:`BatchBackend.find` is
   asked first, so a job submitted before a crash is found by its key, never submitted
   twice; kill point ``job.<action>.submitted`` (after the tool answered, before the id
   is stored), then ``job.<action>.stored`` (state ``submitted``, the tool's job id);
3. follow: bounded waits (``EngineDeps.job_wait``), again and again until the job is
   done; a job still running when the engine stops is followed by the next one (its id
   is stored); kill point ``job.<action>.followed`` after each answer; an apply job
   whose rollout is being aborted, or whose ring's budget is spent meanwhile, is halted
   (:mod:`._halt`) and followed to its end;
4. result: the caller records the per-host outcomes and :func:`record_job` marks the row
   ``done`` in the same transaction (kill point ``job.<action>.result``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.backends import Action, BatchWork, HostOutcome, JobRef, JobStatus, job_key
from workflows.db import read_only
from workflows.engine._backend import Resolved
from workflows.engine._context import StepContext
from workflows.engine._halt import halt_job, stop_reason
from workflows.engine._hosts import OUTPUT_TAIL_CHARS
from workflows.models import BackendJob, HostRun, JobState, Ring
from workflows.ports import InventoryHost

log = logging.getLogger("patchgate.engine")

Intend = Callable[[AsyncSession, HostRun], Awaitable[None]]


async def run_job(
    ctx: StepContext,
    *,
    ring: Ring,
    batch: int | None,
    scope: str,
    backend: Resolved,
    action: Action,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    versions: Callable[[HostRun], Mapping[str, str | None]],
    intend: Intend,
    patchset_hash: str | None,
) -> tuple[BackendJob, JobStatus] | None:
    """Submit (or find) and follow the job for ``runs``; its final status, or None when
    it was recorded before (a restart after its result)."""
    assert backend.batch is not None
    tool = backend.batch
    key = job_key(ring.rollout_id, ring.position, scope, backend.name, action)
    async with read_only(ctx.db) as session:
        job = await session.scalar(sa.select(BackendJob).where(BackendJob.key == key))
    if job is None:
        if not runs:
            return None
        job = await _intend(ctx, ring, batch, backend.name, action, key, runs, intend)
    if job.state == JobState.DONE:
        return None
    by_name = {r.host_name: r for r in runs}
    if job.state == JobState.INTENDED:
        # Only an intent this engine wrote a moment ago can skip the search; from here on
        # (a submit that raised may still have landed) every try asks the tool first.
        fresh_intent = key in ctx.fresh_ops
        ctx.fresh_ops.discard(key)
        ref = None if fresh_intent else await tool.find(key, backend.options)
        found = ref is not None
        if ref is None:
            work = BatchWork(
                key=key,
                action=action,
                rollout_id=ring.rollout_id,
                ring=ring.name,
                batch=batch if batch is not None else -1,
                hosts=[inventory[n] for n in job.hosts if n in inventory],
                versions={n: dict(versions(by_name[n])) for n in job.hosts if n in by_name},
                patchset_hash=patchset_hash,
                options=backend.options,
            )
            ref = await tool.submit(work)
        ctx.hook(f"job.{action}.submitted")
        async with ctx.tx(f"job.{action}.stored") as session:
            fresh = await session.get(BackendJob, job.id)
            assert fresh is not None
            fresh.job_id, fresh.state = ref.job_id, JobState.SUBMITTED.value
            fresh.submitted_at = ctx.now()
            await ctx.event(
                session,
                "backend.job.submitted",
                ring.rollout_id,
                backend=backend.name,
                action=action,
                key=key,
                job_id=ref.job_id,
                found_after_restart=found,
                hosts=list(job.hosts),
            )
        job = fresh
    assert job.job_id is not None
    ref = JobRef(backend=backend.name, job_id=job.job_id, key=key)
    while True:
        status = await tool.follow(ref, backend.options, wait=ctx.deps.job_wait)
        ctx.hook(f"job.{action}.followed")
        if status.done:
            return job, status
        if action == "apply" and (why := await stop_reason(ctx, ring)) is not None:
            await halt_job(ctx, backend, job, why)  # then followed to its end
        log.info(
            "%s job %s (%s) is %s; following again", backend.name, ref.job_id, key, status.state
        )
        await asyncio.sleep(ctx.deps.job_poll)


async def _intend(
    ctx: StepContext,
    ring: Ring,
    batch: int | None,
    backend: str,
    action: Action,
    key: str,
    runs: Sequence[HostRun],
    intend: Intend,
) -> BackendJob:
    async with ctx.tx(f"job.{action}.intent") as session:
        job = BackendJob(
            rollout_id=ring.rollout_id,
            ring_id=ring.id,
            batch=batch,
            backend=backend,
            action=action,
            key=key,
            state=JobState.INTENDED.value,
            hosts=sorted(r.host_name for r in runs),
            created_at=ctx.now(),
        )
        session.add(job)
        for run in runs:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            await intend(session, fresh)
        await ctx.event(
            session,
            "backend.job.intent",
            ring.rollout_id,
            backend=backend,
            action=action,
            key=key,
            ring=ring.name,
            batch=batch,
            hosts=sorted(r.host_name for r in runs),
        )
        await session.flush()
    ctx.fresh_ops.add(key)
    return job


async def record_job(
    ctx: StepContext, session: AsyncSession, job: BackendJob, status: JobStatus
) -> BackendJob:
    """Mark the job done with a summary, and write its audit records: one
    ``backend.job`` event, and one ``host.command`` per host (which backend, action,
    key and job id worked on it), as the SSH path writes one per command."""
    fresh = await session.get(BackendJob, job.id)
    assert fresh is not None
    now = ctx.now()
    counts: dict[str, int] = {}
    for reported in status.hosts.values():
        counts[reported.status] = counts.get(reported.status, 0) + 1
    missing = sorted(set(fresh.hosts) - set(status.hosts))
    fresh.state, fresh.tool_state, fresh.finished_at = JobState.DONE.value, status.state, now
    fresh.result = {"hosts": counts, "missing": missing, "detail": status.detail[:500]}
    started = fresh.submitted_at or fresh.created_at
    duration_ms = round(max((now - started) / dt.timedelta(milliseconds=1), 0))
    common: dict[str, Any] = {
        "backend": fresh.backend,
        "action": fresh.action,
        "key": fresh.key,
        "job_id": fresh.job_id,
    }
    await ctx.event(
        session,
        "backend.job",
        fresh.rollout_id,
        **common,
        state=status.state,
        duration_ms=duration_ms,
        hosts=counts,
        missing=missing,
    )
    for name in fresh.hosts:
        outcome = status.hosts.get(name)
        await ctx.event(
            session,
            "host.command",
            fresh.rollout_id,
            host=name,
            command=f"{fresh.backend}:{fresh.action}",
            **common,
            status=outcome.status if outcome else "missing",
            exit_code=outcome.exit_code if outcome else None,
            duration_ms=duration_ms,
        )
    return fresh


async def run_of(session: AsyncSession, job: BackendJob, name: str) -> HostRun | None:
    return await session.scalar(
        sa.select(HostRun).where(HostRun.rollout_id == job.rollout_id, HostRun.host_name == name)
    )


def keep_output(run: HostRun, outcome: HostOutcome) -> None:
    if outcome.output:
        run.output_tail = outcome.output[-OUTPUT_TAIL_CHARS:]
    if outcome.exit_code is not None:
        run.exit_code = outcome.exit_code


def outcome_why(outcome: HostOutcome | None, what: str) -> str:
    if outcome is None:
        return what
    task = f" in task {outcome.failed_task!r}" if outcome.failed_task else ""
    last = outcome.output.strip().splitlines()[-1] if outcome.output.strip() else ""
    return f"{outcome.status}{task}" + (f": {last[:300]}" if last else "")
