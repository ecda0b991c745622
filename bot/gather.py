"""Work on many hosts: facts and upgradable packages with the executor's concurrency,
recorded on the ``hosts`` table, and assessments from them; shared by ``inventory
refresh``, ``assess --refresh`` and the leader's scheduled refreshes (bot/refresh.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from integrations.advisories import load_feed, records_from_host
from integrations.packages.versions import compare
from workflows import assessment, queries
from workflows.concurrency import in_turn
from workflows.db import Database
from workflows.models import Host
from workflows.ports import Executor, HostAdvisory, HostFacts, InventoryHost, UpgradablePackage


@asynccontextmanager
async def executor_for(settings: Settings, db: Database) -> AsyncIterator[Executor]:
    if settings.executor == "recording":
        from bot.app import build_executor

        yield build_executor(settings)[0]
        return
    from bot.app import build_ssh_executor

    executor = build_ssh_executor(settings, db)[0]
    try:
        yield executor
    finally:
        close = getattr(executor, "aclose", None)
        if close is not None:
            await close()


@dataclass
class Gathered:
    host: InventoryHost
    facts: HostFacts | None = None
    upgradable: Sequence[UpgradablePackage] | None = None
    advisories: Sequence[HostAdvisory] = ()  # the host's own (dnf/yum/zypper) advisories
    error: str | None = None


async def gather(
    executor: Executor,
    hosts: Sequence[InventoryHost],
    *,
    concurrency: int,
    upgradable: bool,
) -> list[Gathered]:
    async def one(host: InventoryHost) -> Gathered:
        result = Gathered(host)
        try:
            result.facts = await executor.facts(host)
            if upgradable:
                listed = await executor.list_upgradable(host)
                if result.facts.package_manager != "apt":  # no assessment without them
                    result.advisories = await executor.host_advisories(host)
                result.upgradable = listed
        except Exception as exc:  # recorded on the host and reported, never dropped
            result.error = f"{type(exc).__name__}: {exc}"
        return result

    return await in_turn(hosts, one, workers=concurrency)


async def record(session: AsyncSession, results: Sequence[Gathered], *, now: dt.datetime) -> None:
    """Store facts (or the error) on each host's row; inventory attributes too."""
    rows = await queries.hosts_by_name(session, names=(r.host.name for r in results))
    for result in results:
        inv = result.host
        row = rows.get(inv.name)
        if row is None:
            row = Host(name=inv.name)
            session.add(row)
        row.address, row.port = inv.address, inv.port
        row.groups, row.tags = sorted(inv.groups), sorted(inv.tags)
        row.environment, row.owner = inv.environment, inv.owner
        row.criticality, row.internet_facing = inv.criticality, inv.internet_facing
        row.reachable = result.facts is not None
        row.last_error = result.error
        facts = result.facts
        if facts is not None:
            row.os_id, row.os_version, row.arch = facts.os_id, facts.os_version, facts.arch
            row.kernel, row.package_manager = facts.kernel, facts.package_manager
            row.os_family, row.build = facts.os_family, facts.build
            row.boot_id, row.reboot_required = facts.boot_id, facts.reboot_required
            row.facts_at = now
    await session.flush()


async def assess(
    session: AsyncSession, settings: Settings, results: Sequence[Gathered], *, now: dt.datetime
) -> int:
    """Match each answered host's upgradable packages against the offline feeds
    (PATCHGATE_ADVISORIES_*) and its own advisories, and store its assessment; how many
    hosts were assessed. Hosts that did not answer keep their last assessment."""
    feed = load_feed(osv_dir=settings.advisories_osv_dir, kev_file=settings.advisories_kev_file)
    assessed: list[tuple[str, list[assessment.Finding]]] = []
    for result in results:
        if result.facts is None or result.upgradable is None:
            continue
        manager = result.facts.package_manager
        findings = assessment.find_fixes(
            result.host,
            result.upgradable,
            [*feed.records, *records_from_host(result.advisories, host=result.host.name)],
            os_id=result.facts.os_id,
            os_version=result.facts.os_version,
            compare=partial(compare, manager),
            known_exploited=feed.known_exploited,
            now=now,
        )
        assessed.append((result.host.name, findings))
    await assessment.store_many(session, assessed, at=now)
    return len(assessed)
