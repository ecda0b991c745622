"""The leader's scheduled refreshes: discovery (facts) and assessment (upgradable packages
matched to advisories) of the whole inventory, so windows and emergencies pin from fresh
assessments without anyone running ``assess --refresh``.

Cadence: ``PATCHGATE_DISCOVERY_INTERVAL`` and ``PATCHGATE_ASSESS_INTERVAL`` (seconds; 0
turns one off). The jobs are registered by :func:`bot.scheduler.register_refresh_jobs`
at every takeover and first run a minute (or one interval, if shorter) after it; a run
is skipped while every inventory host's latest result is younger than the interval, so
a restart does not ask every host again (a host that never answers keeps it due).
Hosts a rollout is working on (a host lease) are left alone. A host that does not answer
is recorded as unreachable on its row, which makes it a coverage gap (``inventory
refresh``, ``/patch status``, App Home, evidence), and the run logs how many there were.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from bot.gather import assess, gather, record
from bot.settings import Settings
from workflows import queries
from workflows.assessment import coverage_gaps
from workflows.db import Database, in_parts, read_only, unit_of_work
from workflows.models import Host, HostAssessment, HostLease
from workflows.ports import Clock, Executor, Inventory

log = logging.getLogger("patchgate.refresh")

Kind = Literal["discovery", "assessment"]


@dataclass
class RefreshDeps:
    settings: Settings
    db: Database
    executor: Executor
    inventory: Inventory
    clock: Clock


async def _stalest(deps: RefreshDeps, kind: Kind, names: list[str]) -> dt.datetime | None:
    """The oldest of the hosts' latest facts (or assessments); None when a host has none."""
    latest: dict[str, dt.datetime | None] = {}
    async with read_only(deps.db) as session:
        for part in in_parts(sorted(set(names))):  # the whole inventory: in parts
            if kind == "discovery":
                query = sa.select(Host.name, Host.facts_at).where(Host.name.in_(part))
            else:
                query = (
                    sa.select(HostAssessment.host, sa.func.max(HostAssessment.assessed_at))
                    .where(HostAssessment.host.in_(part))
                    .group_by(HostAssessment.host)
                )
            latest.update((name, at) for name, at in await session.execute(query))
    times = [latest.get(name) for name in names]
    if not times or any(t is None for t in times):
        return None
    return min(t for t in times if t is not None)


async def refresh(deps: RefreshDeps, kind: Kind, *, interval: float) -> int | None:
    """One scheduled run; the number of coverage gaps found, or None when it was not due
    (every host refreshed less than an interval ago: a restart asks no host again)."""
    inventory = await asyncio.to_thread(deps.inventory.hosts)
    stalest = await _stalest(deps, kind, [h.name for h in inventory])
    if stalest is not None and (deps.clock.now() - stalest).total_seconds() < interval * 0.9:
        return None
    async with read_only(deps.db) as session:
        leased = set(await session.scalars(sa.select(HostLease.host_name)))
    hosts = [h for h in inventory if h.name not in leased]
    results = await gather(
        deps.executor,
        hosts,
        concurrency=deps.settings.ssh_concurrency,
        upgradable=kind == "assessment",
    )
    now = deps.clock.now()
    async with unit_of_work(deps.db) as session:
        await record(session, results, now=now)
        assessed = (
            await assess(session, deps.settings, results, now=now) if kind == "assessment" else 0
        )
        rows = await queries.hosts_by_name(session, names=(h.name for h in hosts))
        gaps = coverage_gaps(
            hosts,
            rows,
            now=now,
            max_age=dt.timedelta(hours=deps.settings.facts_max_age_hours),
        )
    what = f"{assessed} assessed" if kind == "assessment" else f"{len(results)} asked"
    skipped = f", {len(leased)} left to their rollouts" if leased else ""
    if gaps:
        log.warning(
            "scheduled %s: %s%s; %d coverage gap(s): %s",
            kind,
            what,
            skipped,
            len(gaps),
            "; ".join(f"{name} ({why})" for name, why in gaps[:10]),
        )
    else:
        log.info("scheduled %s: %s%s; no coverage gaps", kind, what, skipped)
    return len(gaps)
