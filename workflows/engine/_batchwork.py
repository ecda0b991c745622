"""A batch's hosts on a batch backend (issue 19): one apply job for them, each host's
outcome mapped onto the host state machine exactly as the SSH path maps an apply result,
then (per host, as on the SSH path) the reboot (one reboot job), the health checks and
the rollback (one rollback job, back to the versions recorded before the apply).

Resumable from the host runs' states and the ``backend_jobs`` rows alone: each phase
picks the hosts in its state, and a job's key finds the job again after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.backends import JobStatus, job_key
from workflows.db import read_only
from workflows.engine._backend import Resolved
from workflows.engine._context import StepContext
from workflows.engine._current import host_packages
from workflows.engine._health import batch_tool_results, check_health
from workflows.engine._hosts import finish_all, wants_rollback
from workflows.engine._jobs import keep_output, outcome_why, record_job, run_job, run_of
from workflows.engine._rollbacks import rollback_batch
from workflows.engine._transitions import set_host
from workflows.models import HostRun, Ring, Rollout
from workflows.notify import texts
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost
from workflows.queries import runs_by_id
from workflows.states import HostEvent, HostState


async def work_batch(
    ctx: StepContext,
    rollout: Rollout,
    plan: PatchPlan,
    ring: Ring,
    backend: Resolved,
    run_ids: Sequence[int],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """Drive the batch's hosts on this backend until each is settled."""
    patchset = rollout.patchset or {}
    scope = f"b{ring.next_batch}"
    for _ in range(10):  # each pass moves hosts on; bounded as a safety net
        async with read_only(ctx.db) as session:
            runs = await runs_by_id(session, run_ids=run_ids)
        by_state: dict[str, list[HostRun]] = {}
        for run in runs:
            by_state.setdefault(run.state, []).append(run)
        pending = by_state.get(HostState.PENDING, [])
        applying = by_state.get(HostState.APPLYING, [])
        if pending or applying:
            await _apply(ctx, rollout, ring, backend, scope, pending, applying, inventory, patchset)
            continue
        if by_state.get(HostState.APPLIED):
            await _after_apply(ctx, plan, backend, by_state[HostState.APPLIED], inventory)
            continue
        if by_state.get(HostState.REBOOTING):
            await _reboot(ctx, plan, ring, backend, scope, by_state[HostState.REBOOTING], inventory)
            continue
        back = [r for r in runs if r.state == HostState.ROLLING_BACK or wants_rollback(r, plan)]
        if back and backend.caps.rollback:
            await rollback_batch(ctx, ring, backend, scope, back, inventory)
            continue
        return


async def _apply(
    ctx: StepContext,
    rollout: Rollout,
    ring: Ring,
    backend: Resolved,
    scope: str,
    pending: Sequence[HostRun],
    applying: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    patchset: Mapping[str, Mapping[str, str]],
) -> None:
    """Settle hosts with nothing to do or gone from the inventory, then run the job."""
    work: list[HostRun] = []
    async with ctx.tx("host.batch.ready") as session:
        for run in pending:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            if fresh.host_name not in inventory:
                await set_host(
                    ctx, session, fresh, HostEvent.LOST, error=texts.HOST_NOT_IN_INVENTORY
                )
            elif not host_packages(fresh, patchset):
                await set_host(
                    ctx, session, fresh, HostEvent.NOTHING_TO_DO, error=texts.UP_TO_DATE_ERROR
                )
            else:
                work.append(fresh)

    async def intend(session: AsyncSession, run: HostRun) -> None:
        run.op_id = job_key(ring.rollout_id, ring.position, scope, backend.name, "apply")
        run.started_at = ctx.now()
        await set_host(ctx, session, run, HostEvent.APPLY)
        await ctx.event(
            session,
            "host.apply.intent",
            run.rollout_id,
            host=run.host_name,
            op_id=run.op_id,
            backend=backend.name,
            packages=host_packages(run, patchset),
        )

    done = await run_job(
        ctx,
        ring=ring,
        batch=ring.next_batch,
        scope=scope,
        backend=backend,
        action="apply",
        runs=[*applying, *work],
        inventory=inventory,
        versions=lambda r: host_packages(r, patchset),
        intend=intend,
        patchset_hash=rollout.patchset_hash,
    )
    if done is None:
        return
    job, status = done
    async with ctx.tx("job.apply.result") as session:
        await record_job(ctx, session, job, status)
        for name in job.hosts:
            row = await run_of(session, job, name)
            if row is None or row.state != HostState.APPLYING:
                continue
            await _applied(ctx, session, row, status, host_packages(row, patchset))


async def _applied(
    ctx: StepContext,
    session: AsyncSession,
    run: HostRun,
    status: JobStatus,
    packages: Mapping[str, str],
) -> None:
    """One host's apply outcome, mapped as the SSH path maps an apply result."""
    outcome = status.hosts.get(run.host_name)
    if outcome is None:
        await set_host(
            ctx,
            session,
            run,
            HostEvent.APPLY_FAILED,
            error=f"the {status.job.backend} job ({status.state}) reported nothing for this host",
        )
        return
    keep_output(run, outcome)
    if outcome.status == "unreachable":
        await set_host(ctx, session, run, HostEvent.LOST, error=outcome_why(outcome, "unreachable"))
        return
    if outcome.before:
        run.before_versions = dict(outcome.before)
    if outcome.after:
        run.after_versions = dict(outcome.after)
    run.reboot_required = outcome.reboot_required
    if outcome.status == "failed":
        await set_host(
            ctx, session, run, HostEvent.APPLY_FAILED, error=outcome_why(outcome, "failed")
        )
        return
    wrong = sorted(n for n, v in packages.items() if outcome.after.get(n) != v)
    if wrong:
        prefix = "skipped by the backend and " if outcome.status == "skipped" else ""
        await set_host(
            ctx,
            session,
            run,
            HostEvent.APPLY_FAILED,
            error=prefix
            + "installed versions differ from the pinned set: "
            + ", ".join(f"{n}={outcome.after.get(n)}" for n in wrong),
        )
        return
    await set_host(ctx, session, run, HostEvent.APPLIED)


async def _after_apply(
    ctx: StepContext,
    plan: PatchPlan,
    backend: Resolved,
    applied: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """Hosts to reboot go ``rebooting`` (one reboot job follows); the others are checked."""
    can_reboot = backend.caps.reboot and not backend.caps.reboots_itself
    reboot = [
        r
        for r in applied
        if can_reboot
        and (plan.reboot == "always" or (plan.reboot == "if-required" and r.reboot_required))
    ]
    if reboot:
        async with ctx.tx("host.reboot.intent") as session:
            for run in reboot:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                await set_host(ctx, session, fresh, HostEvent.REBOOT)
    rest = [r for r in applied if r not in reboot]
    await _health(ctx, plan, backend, rest, inventory)


async def _reboot(
    ctx: StepContext,
    plan: PatchPlan,
    ring: Ring,
    backend: Resolved,
    scope: str,
    rebooting: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """One reboot job for the batch's hosts; those it could not reboot are lost."""

    async def intend(session: AsyncSession, run: HostRun) -> None:
        return None  # the hosts are ``rebooting`` already

    done = await run_job(
        ctx,
        ring=ring,
        batch=ring.next_batch,
        scope=scope,
        backend=backend,
        action="reboot",
        runs=rebooting,
        inventory=inventory,
        versions=lambda r: {},
        intend=intend,
        patchset_hash=None,
    )
    if done is not None:
        job, status = done
        async with ctx.tx("job.reboot.result") as session:
            await record_job(ctx, session, job, status)
            for name in job.hosts:
                run = await run_of(session, job, name)
                outcome = status.hosts.get(name)
                if run is None or run.state != HostState.REBOOTING:
                    continue
                if outcome is None or outcome.status in ("failed", "unreachable"):
                    why = outcome_why(outcome, "reboot failed") if outcome else "no reboot reported"
                    await set_host(ctx, session, run, HostEvent.LOST, error=why)
    async with read_only(ctx.db) as session:
        left = await runs_by_id(session, run_ids=[r.id for r in rebooting])
    await _health(
        ctx, plan, backend, [r for r in left if r.state == HostState.REBOOTING], inventory
    )


async def _health(
    ctx: StepContext,
    plan: PatchPlan,
    backend: Resolved,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """The plan's health checks on each host (as on the SSH path), with the ``tool``
    checks answered by the backend once for the batch; a backend that declares no
    health leaves its hosts to the tool checks alone (healthy on the job's word when
    there are none), and says so."""
    tool = await batch_tool_results(ctx, plan, backend, runs, inventory)
    note = None
    if not backend.caps.health:
        note = f"backend {backend.name} runs no PatchGate health checks"
    await finish_all(
        [
            check_health(
                ctx,
                run,
                inventory[run.host_name],
                plan,
                tool=None if tool is None else tool.get(run.host_name, []),
                own=backend.caps.health,
                note=note,
            )
            for run in runs
            if run.host_name in inventory
        ]
    )
    missing = [r for r in runs if r.host_name not in inventory]
    if missing:
        async with ctx.tx("host.lost") as session:
            for run in missing:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                await set_host(
                    ctx, session, fresh, HostEvent.LOST, error=texts.HOST_NOT_IN_INVENTORY
                )
