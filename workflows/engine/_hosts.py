"""One host's work in a batch, resumable from its state after a crash: preflight and
the persisted apply intent, the apply (or, when resuming, the detached command's
result), the reboot, the health checks, and the host's rollback.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.engine._context import StepContext
from workflows.engine._current import host_packages, settle_if_current
from workflows.engine._health import check_health
from workflows.engine._stuck import HostStepFailed, give_up_host
from workflows.engine._transitions import set_host
from workflows.errors import ExecutorError, HostUnreachable, StaleLeader
from workflows.models import HostRun
from workflows.notify import texts
from workflows.plans import PatchPlan
from workflows.ports import ApplyResult, InventoryHost
from workflows.states import HostEvent, HostState

log = logging.getLogger("patchgate.engine")

OUTPUT_TAIL_CHARS = 2000


async def work_host(
    ctx: StepContext,
    run_id: int,
    plan: PatchPlan,
    patchset: Mapping[str, Mapping[str, str]],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """Drive one host until its work in this batch is settled, resuming from its state."""
    ctx.driving.add(run_id)
    try:
        for _ in range(20):  # each pass moves the state on; bounded as a safety net
            run = await ctx.host_run(run_id)
            assert run is not None
            host = inventory.get(run.host_name)
            state = HostState(run.state)
            if host is None and state in (
                HostState.PENDING,
                HostState.APPLYING,
                HostState.APPLIED,
                HostState.REBOOTING,
            ):

                async def write(session: AsyncSession) -> None:
                    fresh = await session.get(HostRun, run_id)
                    assert fresh is not None
                    await set_host(
                        ctx, session, fresh, HostEvent.LOST, error=texts.HOST_NOT_IN_INVENTORY
                    )

                await ctx.host_tx("host.lost", run_id, write)
                continue
            packages = host_packages(run, patchset)
            try:
                if not await host_step(ctx, run, host, plan, packages):
                    return
            except StaleLeader:
                raise
            except Exception as exc:
                if not await give_up_host(ctx, run.id, exc):
                    raise HostStepFailed(run.host_name) from exc
                continue
            ctx.step_failures.pop(f"host:{run.id}", None)
    finally:
        ctx.driving.discard(run_id)
        ctx.committed_runs.pop(run_id, None)


async def host_step(
    ctx: StepContext,
    run: HostRun,
    host: InventoryHost | None,
    plan: PatchPlan,
    packages: Mapping[str, str],
) -> bool:
    """One step of a host's work from its state; False when there is nothing more."""
    state = HostState(run.state)
    if state == HostState.PENDING:
        assert host is not None
        if await settle_if_current(ctx, run, host, packages):
            return True
        await preflight_and_intend(
            ctx, run, host, packages, require_material=plan.rollback.require_material
        )
    elif state == HostState.APPLYING:
        assert host is not None
        await apply_packages(ctx, run, host, packages)
    elif state == HostState.APPLIED:
        assert host is not None
        await after_apply(ctx, run, host, plan)
    elif state == HostState.REBOOTING:
        assert host is not None
        await reboot_host(ctx, run, host, plan)
    elif state == HostState.ROLLING_BACK or wants_rollback(run, plan):
        if host is None:
            return False
        await rollback_host(ctx, run, host)
    else:
        return False
    return True


def wants_rollback(run: HostRun, plan: PatchPlan) -> bool:
    """Whether the plan rolls back a host that failed this way."""
    if run.before_versions is None:
        return False  # nothing was changed on the host
    if run.state == HostState.FAILED:
        return plan.rollback.on_patch_failure
    if run.state == HostState.UNHEALTHY:
        return plan.rollback.on_health_failure
    return False


async def preflight_and_intend(
    ctx: StepContext,
    run: HostRun,
    host: InventoryHost,
    packages: Mapping[str, str],
    *,
    require_material: bool = True,
) -> None:
    """Preflight the host, then persist the apply intent (or the refusal)."""
    preflight, error, record = await ctx.command(
        host, "preflight", lambda: ctx.deps.executor.preflight(host, packages)
    )

    async def write(session: AsyncSession) -> None:
        fresh = await session.get(HostRun, run.id)
        assert fresh is not None
        await ctx.event(session, "host.command", run.rollout_id, **record)
        if isinstance(error, HostUnreachable):
            await set_host(ctx, session, fresh, HostEvent.LOST, error=str(error))
            return
        missing = list(preflight.rollback_material_missing) if preflight else []
        if (
            error is not None
            or preflight is None
            or not preflight.ok
            or (missing and require_material)
        ):
            problems = (
                str(error)
                if error
                else "; ".join(
                    [
                        *(preflight.problems if preflight else []),
                        *(f"unavailable {u}" for u in (preflight.unavailable if preflight else [])),
                        *(f"no rollback material for {m}" for m in missing),
                    ]
                )
            )
            await set_host(
                ctx, session, fresh, HostEvent.APPLY_FAILED, error=f"preflight refused: {problems}"
            )
            return
        fresh.op_id = f"pg-{run.rollout_id}-{run.id}-{uuid.uuid4().hex[:8]}"
        fresh.started_at = ctx.now()
        ctx.fresh_ops.add(fresh.op_id)
        await set_host(ctx, session, fresh, HostEvent.APPLY)
        await ctx.event(
            session,
            "host.apply.intent",
            run.rollout_id,
            host=run.host_name,
            op_id=fresh.op_id,
            packages=dict(packages),
            **({"rollback_material_missing": missing} if missing else {}),
        )

    await ctx.host_tx("host.apply.intent", run.id, write)


async def apply_packages(
    ctx: StepContext, run: HostRun, host: InventoryHost, packages: Mapping[str, str]
) -> None:
    """Run the apply (or, resuming, read the result of the one that ran)."""
    op_id = run.op_id or ""
    executor = ctx.deps.executor
    records = []
    result: ApplyResult | None = None
    error: ExecutorError | None = None
    if op_id not in ctx.fresh_ops:
        # Resuming: the command may have run (or still be running) on the host.
        result, error, record = await ctx.command(
            host, "apply_status", lambda: executor.apply_status(host, op_id=op_id)
        )
        records.append(record)
    if result is None and error is None:
        result, error, record = await ctx.command(
            host, "apply", lambda: executor.apply(host, packages, op_id=op_id)
        )
        records.append(record)
    ctx.fresh_ops.discard(op_id)
    ctx.hook("host.apply.returned")

    async def write(session: AsyncSession) -> None:
        fresh = await session.get(HostRun, run.id)
        assert fresh is not None
        for record in records:
            await ctx.event(session, "host.command", run.rollout_id, **record)
        if fresh.state != HostState.APPLYING:
            return
        if error is not None or result is None:
            event = HostEvent.LOST if isinstance(error, HostUnreachable) else HostEvent.APPLY_FAILED
            await set_host(ctx, session, fresh, event, error=str(error))
            return
        fresh.before_versions = dict(result.before)
        fresh.after_versions = dict(result.after)
        fresh.exit_code = result.exit_code
        fresh.output_tail = result.output_tail[-OUTPUT_TAIL_CHARS:]
        fresh.reboot_required = result.reboot_required
        wrong = sorted(n for n, v in packages.items() if result.after.get(n) != v)
        if not result.ok:
            await set_host(
                ctx,
                session,
                fresh,
                HostEvent.APPLY_FAILED,
                error=f"package command exited {result.exit_code}",
            )
        elif wrong:
            await set_host(
                ctx,
                session,
                fresh,
                HostEvent.APPLY_FAILED,
                error="installed versions differ from the pinned set: "
                + ", ".join(f"{n}={result.after.get(n)}" for n in wrong),
            )
        else:
            await set_host(ctx, session, fresh, HostEvent.APPLIED)

    await ctx.host_tx("host.apply.result", run.id, write)


async def after_apply(ctx: StepContext, run: HostRun, host: InventoryHost, plan: PatchPlan) -> None:
    """Reboot if the plan (or the host) asks for it, else check health now."""
    reboot = plan.reboot == "always" or (plan.reboot == "if-required" and run.reboot_required)
    if reboot:

        async def write(session: AsyncSession) -> None:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            await set_host(ctx, session, fresh, HostEvent.REBOOT)

        await ctx.host_tx("host.reboot.intent", run.id, write)
        return
    await check_health(ctx, run, host, plan)


async def reboot_host(ctx: StepContext, run: HostRun, host: InventoryHost, plan: PatchPlan) -> None:
    """Reboot unless the boot id shows it already happened, then check health."""
    executor = ctx.deps.executor
    facts, error, record = await ctx.command(host, "facts", lambda: executor.facts(host))
    records = [record]
    if error is None and facts is not None and facts.boot_id == run.boot_id_before:
        log.info(
            "%s: planned reboot (rollout #%d), waiting for a new boot", host.name, run.rollout_id
        )
        _, error, record = await ctx.command(host, "reboot", lambda: executor.reboot(host))
        records.append(record)
    ctx.hook("host.reboot.returned")
    if error is not None:

        async def write(session: AsyncSession) -> None:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            for record in records:
                await ctx.event(session, "host.command", run.rollout_id, **record)
            await set_host(ctx, session, fresh, HostEvent.LOST, error=str(error))

        await ctx.host_tx("host.reboot.result", run.id, write)
        return
    await check_health(ctx, run, host, plan, records=records)


async def rollback_host(ctx: StepContext, run: HostRun, host: InventoryHost) -> None:
    """Put back the versions the host had before the apply."""
    if run.state != HostState.ROLLING_BACK:

        async def intend(session: AsyncSession) -> None:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            await set_host(ctx, session, fresh, HostEvent.ROLLBACK)

        await ctx.host_tx("host.rollback.intent", run.id, intend)
    snapshot = dict(run.before_versions or {})
    result, error, record = await ctx.command(
        host, "rollback", lambda: ctx.deps.executor.rollback(host, snapshot)
    )
    ctx.hook("host.rollback.returned")

    async def write(session: AsyncSession) -> None:
        fresh = await session.get(HostRun, run.id)
        assert fresh is not None
        await ctx.event(session, "host.command", run.rollout_id, **record)
        if fresh.state != HostState.ROLLING_BACK:
            return
        if error is None and result is not None and result.ok:
            fresh.after_versions = dict(result.after)
            await set_host(ctx, session, fresh, HostEvent.ROLLED_BACK)
        else:
            detail = str(error) if error else f"exit {result.exit_code if result else '?'}"
            await set_host(
                ctx, session, fresh, HostEvent.ROLLBACK_FAILED, error=f"rollback failed: {detail}"
            )

    await ctx.host_tx("host.rollback.result", run.id, write)


async def finish_all(work: Sequence[Awaitable[None]]) -> None:
    """Run a batch's host work to the end, then re-raise the first error, if any.

    Not a TaskGroup: cancelling the other hosts when one fails could abandon a host
    mid-command, and (on SQLite) a transaction whose BEGIN was still waiting for the
    lock in the driver's thread, which then holds the database until collected.
    """
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
