"""Assessing a rollout (laid out by ``_laying``): gather each host's facts, then
refresh the hosts' assessments and pin the patch set per platform from the fresh
assessments of all its hosts (each host gets its share of it), each phase in its own
transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import assessment, audit, queries
from workflows.assessment import (
    HostsBaseline,
    describe,
    merge_selected,
    patchset_hash,
    pin,
    update_identities,
)
from workflows.concurrency import in_turn
from workflows.db import read_in_parts, read_only
from workflows.engine._context import WRITE_CHUNK, Chunks, StepContext
from workflows.engine._endings import finish
from workflows.engine._refresh import refresh_assessments
from workflows.engine._simulate import simulate_group
from workflows.engine._toolassess import tool_assessed, tool_facts
from workflows.engine._transitions import set_host, set_rollout
from workflows.errors import Conflict
from workflows.models import Host, HostRun, Ring, Rollout
from workflows.notify import NoteAbout, texts
from workflows.plans import PatchPlan
from workflows.ports import HostFacts, InventoryHost, PatchIdentity
from workflows.states import HostEvent, HostState, RolloutEvent


async def assess(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """One assessment step: gather the facts of hosts not yet seen, else pin."""
    async with read_only(ctx.db) as session:
        runs = await read_in_parts(
            session,
            sa.select(HostRun)
            .join(Ring, Ring.id == HostRun.ring_id)
            .where(HostRun.rollout_id == rollout_id, HostRun.state == HostState.PENDING.value)
            .order_by(Ring.position, HostRun.batch, HostRun.host_name),
        )
    inventory = await ctx.hosts()
    unknown = [r for r in runs if r.platform is None]
    if unknown:
        await gather_facts(ctx, rollout_id, unknown, inventory, plan=plan)
        return True
    return await pin_patchset(ctx, rollout_id, plan, runs, inventory)


async def gather_facts(
    ctx: StepContext,
    rollout_id: int,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    *,
    plan: PatchPlan | None = None,
) -> None:
    """Ask every listed host for its facts (a tool-assessed host: its backend, see
    ``_toolassess``); a host that cannot answer is lost."""
    told, platforms = await tool_facts(ctx, plan, runs, inventory)

    async def one(
        run: HostRun,
    ) -> tuple[HostRun, HostFacts | None, str | None, dict[str, Any] | None]:
        host = inventory.get(run.host_name)
        if host is None:
            return run, None, texts.HOST_NOT_IN_INVENTORY, None
        if run.host_name in told:
            return told[run.host_name]
        facts, error, record = await ctx.command(
            host, "facts", lambda: ctx.deps.executor.facts(host)
        )
        return run, facts, (str(error) if error else None), record

    results = await in_turn(runs, one, workers=ctx.deps.concurrency)
    # In chunks: a host whose facts were recorded is not asked again after a restart.
    chunks = Chunks(results)
    while chunks:
        chunk, _ = chunks.take()
        async with ctx.tx("rollout.facts") as session:
            # The audit lock first, as every writer: it also serialises two rollouts
            # recording the same hosts (each reads, then adds, the host's row).
            await audit.lock(session)
            chunks.begin()
            fresh = {
                r.id: r for r in await queries.runs_by_id(session, run_ids=[c[0].id for c in chunk])
            }
            names = [c[0].host_name for c in chunk]
            rows = await session.scalars(sa.select(Host).where(Host.name.in_(names)))
            known = {h.name: h for h in rows}
            for run_snapshot, facts, error, record in chunk:
                run = fresh[run_snapshot.id]
                if record:
                    await ctx.event(session, "host.command", rollout_id, **record)
                if facts is None and run.host_name not in platforms:
                    await set_host(ctx, session, run, HostEvent.LOST, error=error)
                    await record_host(ctx, session, run.host_name, None, error, known=known)
                    continue
                run.platform = facts.platform if facts else platforms[run.host_name]
                run.boot_id_before = facts.boot_id if facts else None
                await record_host(ctx, session, run.host_name, facts, None, known=known)
        chunks.end()  # after the commit: the ORM's flush is most of the writing


async def record_host(
    ctx: StepContext,
    session: AsyncSession,
    name: str,
    facts: HostFacts | None,
    error: str | None,
    *,
    known: Mapping[str, Host] | None = None,
) -> None:
    """Keep the host's last known facts (or its error) on its inventory row (``known``:
    the rows already read, by name; a name missing from it has no row)."""
    if known is not None:
        host = known.get(name)
    else:
        host = await session.scalar(sa.select(Host).where(Host.name == name))
    if host is None:
        host = Host(name=name)
        session.add(host)
    host.reachable = error is None
    host.last_error = error
    if facts is not None:
        host.os_id, host.os_version, host.arch = facts.os_id, facts.os_version, facts.arch
        host.kernel, host.package_manager = facts.kernel, facts.package_manager
        host.os_family, host.build = facts.os_family, facts.build
        host.boot_id, host.reboot_required = facts.boot_id, facts.reboot_required
        host.facts_at = ctx.now()


YIELD_EVERY = 1000  # hosts given their share between two turns of the event loop

# A pin over more hosts than this writes their shares in chunks of host runs (one UPDATE
# of many rows each, about CHUNK_SECONDS of writing, at most PIN_CHUNK) before its
# transaction, so no other writer waits long behind a 10,000-host pin.
PIN_FIRST = 200
PIN_CHUNK = 2000


async def write_shares(ctx: StepContext, rows: Sequence[dict[str, Any]]) -> None:
    """Each host run's share of the pinned set (and what it leaves over), in chunks
    (``rollout.pinning``). The rollout is still assessing, so no host step reads them
    yet; after a crash before the pin's own transaction the pin runs again and writes
    them all again."""
    chunks = Chunks(rows, first=PIN_FIRST, most=PIN_CHUNK)
    while chunks:
        part, _ = chunks.take()
        async with ctx.tx("rollout.pinning") as session:
            chunks.begin()
            await session.execute(sa.update(HostRun), list(part))
            chunks.end()


async def pin_patchset(
    ctx: StepContext,
    rollout_id: int,
    plan: PatchPlan,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> bool:
    """Refresh the hosts' assessments, then pin each platform's set from the fresh
    assessments of all its hosts (or refuse, naming the hosts without one)."""
    gaps = await refresh_assessments(ctx, rollout_id, runs, inventory, plan=plan)
    trusted = {r.host_name for _, rs in tool_assessed(ctx, plan, runs).values() for r in rs}
    by_platform: dict[str, list[HostRun]] = {}
    for run in runs:
        by_platform.setdefault(run.platform or "", []).append(run)
    async with read_only(ctx.db) as session:
        stored = await assessment.latest(session, hosts=[r.host_name for r in runs])
    now = ctx.now()
    patchset: dict[str, dict[str, str]] = {}
    shares: dict[int, dict[str, str]] = {}  # run id -> its share of the platform's set
    left_over: dict[int, dict[str, str]] = {}  # run id -> package -> why not installed
    baselines: dict[str, dict[str, Any]] = {}  # platform -> how its set was chosen
    records: list[dict[str, Any]] = []
    lost: dict[int, str] = {}
    failure: str | None = None
    lacking: list[str] = []
    chosen_by: dict[str, HostsBaseline] = {}
    identities: dict[str, dict[str, tuple[str, PatchIdentity]]] = {}  # platform -> KB/catalog
    for platform, members in sorted(by_platform.items()):
        # Pure work over every host of the platform: in a thread, so the event loop (a
        # Slack ack) gets its turn every few milliseconds, not after the whole fleet.
        chosen = await asyncio.to_thread(
            partial(
                assessment.baseline_for,
                [r.host_name for r in members],
                stored,
                plan.packages,
                now=now,
                max_age=ctx.deps.assessment_max_age,
            )
        )
        chosen_by[platform] = chosen
        lacking += [*chosen.missing, *(h for h, _ in chosen.stale)]
    if lacking:
        failure = texts.no_fresh_assessment(lacking, gaps)
    for platform, members in sorted(by_platform.items()):
        if failure:
            break
        chosen = chosen_by[platform]
        merged = await asyncio.to_thread(merge_selected, [r.host_name for r in members], chosen)
        platform_set: dict[str, str] = {}
        simulated_on: list[str] = []
        groups: dict[tuple[str, ...], list[HostRun]] = {}
        for run in members:
            groups.setdefault(tuple(merged.specs[run.host_name]), []).append(run)
            left_over[run.id] = dict(merged.left_over.get(run.host_name, {}))
        for specs, group in groups.items():
            if not specs:
                for run in group:
                    shares[run.id] = {}
                continue
            installs, error_text, tried = await simulate_group(
                ctx, list(specs), group, inventory, trusted
            )
            records += tried.records
            lost.update(tried.lost)
            if error_text is not None:
                failure = texts.assessed_fixes_gone(platform, list(specs), tried.host, error_text)
                break
            if installs is None:
                continue  # every host of the group was lost
            simulated_on.append(tried.host)
            try:
                pinned = pin(platform, installs).packages
            except Conflict as exc:
                failure = str(exc)
                break
            mine: dict[str, str] = {}
            clash: dict[str, str] = {}
            for package, version in pinned.items():
                if platform_set.setdefault(package, version) == version:
                    mine[package] = version
                else:
                    clash[package] = (
                        f"needs {version}; the set pins {platform_set[package]} for other hosts"
                    )
            for n, run in enumerate(group, 1):
                shares[run.id] = dict(mine)
                left_over[run.id].update(clash)
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the event loop's turn (Slack's acks)
        if failure:
            break
        patchset[platform] = dict(sorted(platform_set.items()))
        identities[platform] = {
            f.package: (f.candidate, f.identity) for f in chosen.result.selected if f.identity
        }
        baselines[platform] = {
            "source": "assessment",
            "hosts": len(members),
            "assessed_at": chosen.assessed_at.isoformat() if chosen.assessed_at else None,
            "selected": chosen.selected_packages,
            "left_out": {f.package: why for f, why in chosen.result.left_out},
            "simulated_on": sorted(simulated_on),
            "coverage_gaps": {
                h: gaps[h] for h in sorted(gaps) if h in {r.host_name for r in members}
            },
        }
    held = {run.id: set(run.held_packages or ()) for run in runs}
    for run_id, share in shares.items():
        for package in sorted(held.get(run_id, set()) & set(share)):
            left_over.setdefault(run_id, {})[package] = "held by a package exception"
    rows = [
        {"id": run_id, "packages": share, "left_over": left_over.get(run_id) or None}
        for run_id, share in shares.items()
        if run_id not in lost
    ]
    if not failure and len(rows) > PIN_FIRST:
        await write_shares(ctx, rows)
        shares = {}
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
        ids = list(shares)
        share_runs = {
            r.id: r
            for part in (ids[i : i + WRITE_CHUNK] for i in range(0, len(ids), WRITE_CHUNK))
            for r in await queries.runs_by_id(session, run_ids=part)
        }
        for run_id, share in shares.items():
            if run_id in lost:
                continue
            share_run = share_runs[run_id]
            share_run.packages = share
            share_run.left_over = left_over.get(run_id) or None
        updates = update_identities(patchset, identities)  # {} for packages only
        rollout.patchset = patchset
        rollout.patchset_updates = updates or None
        rollout.patchset_hash = patchset_hash(patchset, updates)
        await set_rollout(ctx, session, rollout, RolloutEvent.ASSESSED)
        await ctx.event(
            session,
            "rollout.pinned",
            rollout_id,
            patchset=patchset,
            patchset_hash=rollout.patchset_hash,
            baseline=baselines,
            coverage_gaps=dict(sorted(gaps.items())),
            **({"updates": updates} if updates else {}),
        )
        described = describe(patchset, updates=updates)
        await ctx.note(
            session,
            rollout,
            "pinned",
            texts.pinned_text(rollout.patchset_hash, described, baselines),
            NoteAbout.PINNED,
            patchset_hash=rollout.patchset_hash,
        )
    return True
