"""Rolling back hosts on any backend (issue 19): host by host on a per-host backend
(the SSH path, as before), one ``rollback`` job per batch backend, putting back the
versions recorded before the apply, with the same intent/find discipline as an apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.engine._backend import Resolved, resolve, run_backend
from workflows.engine._context import StepContext
from workflows.engine._hosts import finish_all, rollback_host
from workflows.engine._jobs import keep_output, outcome_why, record_job, run_job, run_of
from workflows.engine._transitions import set_host
from workflows.models import HostRun, Ring
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost
from workflows.states import HostEvent, HostState


async def rollback_runs(
    ctx: StepContext,
    plan: PatchPlan,
    ring: Ring,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    *,
    scope: str,
    concurrent: bool = True,
) -> None:
    """Roll back these runs: host by host on a per-host backend (as before), one job
    per batch backend (``scope``: ``ring`` for a ring's rollback, ``abort``)."""
    per_host: list[Awaitable[None]] = []
    by_backend: dict[str, list[HostRun]] = {}
    for run in runs:
        host = inventory.get(run.host_name)
        if host is None:
            continue
        backend = resolve(ctx, plan, run_backend(run))
        if backend.batch is None:
            per_host.append(rollback_host(ctx, run, host))
        elif backend.caps.rollback:
            by_backend.setdefault(backend.name, []).append(run)
    jobs = [
        rollback_batch(ctx, ring, resolve(ctx, plan, name), scope, members, inventory)
        for name, members in sorted(by_backend.items())
    ]
    if concurrent:
        await finish_all([*per_host, *jobs])
    else:  # one after the other, as an abort rolls back
        for work in [*per_host, *jobs]:
            await work


async def rollback_batch(
    ctx: StepContext,
    ring: Ring,
    backend: Resolved,
    scope: str,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """One rollback job putting back the versions recorded before the apply."""

    async def intend(session: AsyncSession, run: HostRun) -> None:
        if run.state != HostState.ROLLING_BACK:
            await set_host(ctx, session, run, HostEvent.ROLLBACK)

    done = await run_job(
        ctx,
        ring=ring,
        batch=None if scope in ("ring", "abort") else ring.next_batch,
        scope=scope,
        backend=backend,
        action="rollback",
        runs=runs,
        inventory=inventory,
        versions=lambda r: dict(r.before_versions or {}),
        intend=intend,
        patchset_hash=None,
    )
    if done is None:
        return
    job, status = done
    async with ctx.tx("job.rollback.result") as session:
        await record_job(ctx, session, job, status)
        for name in job.hosts:
            run = await run_of(session, job, name)
            if run is None or run.state != HostState.ROLLING_BACK:
                continue
            outcome = status.hosts.get(name)
            wanted = dict(run.before_versions or {})
            if outcome is not None and outcome.status == "applied":
                wrong = sorted(n for n, v in wanted.items() if outcome.after.get(n) != v)
                if not wrong:
                    run.after_versions = dict(outcome.after)
                    await set_host(ctx, session, run, HostEvent.ROLLED_BACK)
                    continue
                detail = "versions differ after rollback: " + ", ".join(
                    f"{n}={outcome.after.get(n)}" for n in wrong
                )
            elif outcome is not None:
                keep_output(run, outcome)
                detail = outcome_why(outcome, outcome.status)
            else:
                detail = "the job reported nothing for this host"
            await set_host(
                ctx, session, run, HostEvent.ROLLBACK_FAILED, error=f"rollback failed: {detail}"
            )
