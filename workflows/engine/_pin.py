"""Assessing a rollout: lay out its rings and host runs, gather each host's facts, then
pin the patch set per platform (from a fresh stored assessment, or live from one
host's upgradable packages), each phase in its own transaction.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import assessment, exceptions, outbox
from workflows import schedule as schedules
from workflows.assessment import describe, patchset_hash, pin, select_packages
from workflows.db import read_only
from workflows.engine._context import StepContext
from workflows.engine._endings import finish
from workflows.engine._layout import layout_rollout
from workflows.engine._transitions import set_host, set_rollout
from workflows.errors import Conflict, HostUnreachable
from workflows.models import Host, HostRun, Ring, Rollout
from workflows.notify import NoteAbout, rollout_parent, texts
from workflows.plans import PatchPlan
from workflows.ports import HostFacts, InventoryHost
from workflows.states import HostEvent, HostState, RolloutEvent


async def begin(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """Lay out the rollout's rings, batches and host runs and start assessing."""
    hosts = await ctx.inventory_hosts()
    async with ctx.tx("rollout.assessing") as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        now = ctx.now()
        excepted = await exceptions.excepted_hosts(session, now=now)
        held = await exceptions.held_packages(session, now=now)
        layout = layout_rollout(plan, hosts, excepted=excepted)
        rollout.started_at = now
        await set_rollout(ctx, session, rollout, RolloutEvent.ASSESS)
        total = 0
        for ring_layout in layout.rings:
            ring = Ring(
                rollout_id=rollout.id,
                position=ring_layout.position,
                name=ring_layout.name,
                host_count=len(ring_layout.hosts),
                batch_size=ring_layout.batch_size,
                batch_count=len(ring_layout.batches),
                failure_budget=ring_layout.failure_budget,
            )
            session.add(ring)
            await session.flush()
            for number, batch in enumerate(ring_layout.batches):
                for name in batch:
                    session.add(
                        HostRun(
                            rollout_id=rollout.id,
                            ring_id=ring.id,
                            host_name=name,
                            batch=number,
                            held_packages=held.get(name),
                        )
                    )
                    total += 1
            for name in ring_layout.excepted:
                session.add(
                    HostRun(
                        rollout_id=rollout.id,
                        ring_id=ring.id,
                        host_name=name,
                        batch=-1,
                        state=HostState.EXCEPTED.value,
                        error="active exception",
                    )
                )
        await ctx.event(
            session,
            "rollout.layout",
            rollout.id,
            rings={r.name: len(r.hosts) for r in layout.rings},
            excepted=sorted(excepted & {h.name for h in hosts}),
            left_out=layout.left_out,
        )
        await outbox.enqueue(
            session,
            **rollout_parent(
                rollout,
                texts.assessing_text(rollout, plan.name, total, len(layout.rings))
                + schedules.window_suffix(rollout, plan),
                now=now,
            ),
        )
    return True


async def assess(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """One assessment step: gather the facts of hosts not yet seen, else pin."""
    async with read_only(ctx.db) as session:
        runs = list(
            await session.scalars(
                sa.select(HostRun)
                .join(Ring, Ring.id == HostRun.ring_id)
                .where(HostRun.rollout_id == rollout_id, HostRun.state == HostState.PENDING.value)
                .order_by(Ring.position, HostRun.batch, HostRun.host_name)
            )
        )
    inventory = await ctx.hosts()
    unknown = [r for r in runs if r.platform is None]
    if unknown:
        await gather_facts(ctx, rollout_id, unknown, inventory)
        return True
    return await pin_patchset(ctx, rollout_id, plan, runs, inventory)


async def gather_facts(
    ctx: StepContext,
    rollout_id: int,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> None:
    """Ask every listed host for its facts; a host that cannot answer is lost."""

    async def one(
        run: HostRun,
    ) -> tuple[HostRun, HostFacts | None, str | None, dict[str, Any] | None]:
        host = inventory.get(run.host_name)
        if host is None:
            return run, None, texts.HOST_NOT_IN_INVENTORY, None
        facts, error, record = await ctx.command(
            host, "facts", lambda: ctx.deps.executor.facts(host)
        )
        return run, facts, (str(error) if error else None), record

    results = await asyncio.gather(*(one(r) for r in runs))
    async with ctx.tx("rollout.facts") as session:
        for run_snapshot, facts, error, record in results:
            run = await session.get(HostRun, run_snapshot.id)
            assert run is not None
            if record:
                await ctx.event(session, "host.command", rollout_id, **record)
            if facts is None:
                await set_host(ctx, session, run, HostEvent.LOST, error=error)
                await record_host(ctx, session, run.host_name, None, error)
                continue
            run.platform = facts.platform
            run.boot_id_before = facts.boot_id
            await record_host(ctx, session, run.host_name, facts, None)


async def record_host(
    ctx: StepContext, session: AsyncSession, name: str, facts: HostFacts | None, error: str | None
) -> None:
    """Keep the host's last known facts (or its error) on its inventory row."""
    host = await session.scalar(sa.select(Host).where(Host.name == name))
    if host is None:
        host = Host(name=name)
        session.add(host)
    host.reachable = facts is not None
    host.last_error = error
    if facts is not None:
        host.os_id, host.os_version, host.arch = facts.os_id, facts.os_version, facts.arch
        host.kernel, host.package_manager = facts.kernel, facts.package_manager
        host.boot_id, host.reboot_required = facts.boot_id, facts.reboot_required
        host.facts_at = ctx.now()


async def pin_patchset(
    ctx: StepContext,
    rollout_id: int,
    plan: PatchPlan,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> bool:
    """Choose and simulate each platform's package set, then pin it (or fail)."""
    by_platform: dict[str, list[HostRun]] = {}
    for run in runs:
        by_platform.setdefault(run.platform or "", []).append(run)
    async with read_only(ctx.db) as session:
        stored = await assessment.latest(session, hosts=[r.host_name for r in runs])
    now = ctx.now()
    patchset: dict[str, dict[str, str]] = {}
    baselines: dict[str, dict[str, Any]] = {}  # platform -> how its set was chosen
    records: list[dict[str, Any]] = []
    lost: dict[int, str] = {}
    failure: str | None = None
    for platform, members in sorted(by_platform.items()):
        chosen = assessment.baseline_for(
            [r.host_name for r in members],
            stored,
            plan.packages,
            now=now,
            max_age=ctx.deps.assessment_max_age,
        )
        refusal = assessment.refusal_without_assessment(
            platform, [r.host_name for r in members], plan.packages
        )
        if not chosen.fresh and refusal:
            failure = refusal
            break
        # Hosts with a fresh assessment first, the one with the most selected fixes
        # first (ring order breaks ties), then the others if the baseline can be
        # applied without advisory data (the live path).
        fresh = set(chosen.fresh)
        selected = Counter(f.host for f in chosen.result.selected)
        order = sorted(
            (r for r in members if r.host_name in fresh),
            key=lambda r: -selected[r.host_name],
        )
        if refusal is None:
            order += [r for r in members if r.host_name not in fresh]
        for run in order:
            host = inventory.get(run.host_name)
            if host is None:
                lost[run.id] = texts.HOST_NOT_IN_INVENTORY
                continue
            if run.host_name in fresh:
                specs, elsewhere = chosen.specs_for(run.host_name)
                baselines[platform] = {
                    "source": "assessment",
                    "reference": run.host_name,
                    "assessed_at": chosen.assessed_at.isoformat() if chosen.assessed_at else None,
                    "selected": chosen.selected_packages,
                    "left_out": {f.package: why for f, why in chosen.result.left_out},
                    "not_on_reference": elsewhere,
                    "not_assessed": [*chosen.missing, *(h for h, _ in chosen.stale)],
                }
            else:
                upgradable, error, record = await ctx.command(
                    host, "list_upgradable", partial(ctx.deps.executor.list_upgradable, host)
                )
                records.append(record)
                if error is not None or upgradable is None:
                    lost[run.id] = str(error)
                    continue
                specs = select_packages(upgradable, plan.packages)
                baselines[platform] = {"source": "live", "reference": run.host_name}
            if not specs:
                patchset[platform] = {}
                break
            simulation, error, record = await ctx.command(
                host, "simulate", partial(ctx.deps.executor.simulate, host, specs)
            )
            records.append(record)
            if (
                run.host_name in fresh
                and error is not None
                and not isinstance(error, HostUnreachable)
            ):
                # e.g. an assessed version is gone: the assessment no longer holds
                failure = texts.assessed_fixes_gone(platform, specs, run.host_name, error)
                break
            if error is not None or simulation is None:
                lost[run.id] = str(error)
                continue
            try:
                patchset[platform] = pin(platform, simulation).packages
            except Conflict as exc:
                failure = str(exc)
            break
        if failure:
            break
        if platform not in patchset and refusal and len(order) < len(members):
            # every host with a fresh assessment was lost; the rest cannot be pinned
            failure = refusal
            break
    async with ctx.tx("rollout.assessed") as session:
        rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        for record in records:
            await ctx.event(session, "host.command", rollout_id, **record)
        for run_id, lost_error in lost.items():
            lost_run = await session.get(HostRun, run_id)
            assert lost_run is not None
            await set_host(ctx, session, lost_run, HostEvent.LOST, error=lost_error)
        if failure:
            await finish(ctx, session, rollout, RolloutEvent.FAILED, reason=failure)
            await ctx.note(
                session,
                rollout,
                "assessment-failed",
                texts.assessment_failed_text(failure),
                NoteAbout.FAILED,
            )
            return True
        # A platform missing from the patch set lost every host during assessment; they
        # are already marked unreachable above, so there is nothing to pin for it.
        rollout.patchset = patchset
        rollout.patchset_hash = patchset_hash(patchset)
        await set_rollout(ctx, session, rollout, RolloutEvent.ASSESSED)
        await ctx.event(
            session,
            "rollout.pinned",
            rollout_id,
            patchset=patchset,
            patchset_hash=rollout.patchset_hash,
            baseline=baselines,
        )
        await ctx.note(
            session,
            rollout,
            "pinned",
            texts.pinned_text(rollout.patchset_hash, describe(patchset), baselines),
            NoteAbout.PINNED,
            patchset_hash=rollout.patchset_hash,
        )
    return True
