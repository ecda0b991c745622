"""A host with nothing left to install: its share of the pinned set (less held
packages) is empty, or every pinned version is already installed. It is settled
``up_to_date`` without any package command (issue 16)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.engine._context import StepContext
from workflows.engine._transitions import set_host
from workflows.errors import HostUnreachable
from workflows.models import HostRun
from workflows.notify import texts
from workflows.ports import InventoryHost
from workflows.states import HostEvent


def host_packages(run: HostRun, patchset: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """What this run installs: its share of the platform's set (the whole platform set
    for runs pinned before shares existed), less the packages an exception holds."""
    share = run.packages if run.packages is not None else patchset.get(run.platform or "", {})
    packages = dict(share)
    for held_package in run.held_packages or ():
        packages.pop(held_package, None)  # a package-scoped exception
    return packages


async def settle_if_current(
    ctx: StepContext, run: HostRun, host: InventoryHost, packages: Mapping[str, str]
) -> bool:
    """Settle the host up to date, running no package command, when its share is empty
    or every pinned version is installed already; False when there is work to do."""
    records = []
    if packages:
        installed, error, record = await ctx.command(
            host, "installed", lambda: ctx.deps.executor.installed(host, list(packages))
        )
        records.append(record)
        if isinstance(error, HostUnreachable):

            async def lost(session: AsyncSession) -> None:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                await ctx.event(session, "host.command", run.rollout_id, **record)
                await set_host(ctx, session, fresh, HostEvent.LOST, error=str(error))

            await ctx.host_tx("host.lost", run.id, lost)
            return True
        if installed is None or any(installed.get(n) != v for n, v in packages.items()):
            return False  # work to do (or the query failed: preflight asks again, audited)

    async def write(session: AsyncSession) -> None:
        fresh = await session.get(HostRun, run.id)
        assert fresh is not None
        for record in records:
            await ctx.event(session, "host.command", run.rollout_id, **record)
        await set_host(ctx, session, fresh, HostEvent.NOTHING_TO_DO, error=texts.UP_TO_DATE_ERROR)
        await ctx.event(
            session,
            "host.up_to_date",
            run.rollout_id,
            host=run.host_name,
            packages=dict(packages),
            left_over=fresh.left_over or {},
        )

    await ctx.host_tx("host.up_to_date", run.id, write)
    return True
