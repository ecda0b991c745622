"""The refresh right before a patch set is pinned: assess every pending host of the
rollout again, all at once and within ``EngineDeps.refresh_timeout`` seconds, and store
what came back. A host that could not be refreshed keeps its earlier assessment (used
only while it is fresh) and is reported as a coverage gap of the pin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from workflows import assessment, audit
from workflows.assessment import Finding, LiveAssessor
from workflows.db import read_only
from workflows.engine._context import Chunks, StepContext
from workflows.models import Host, HostRun
from workflows.ports import InventoryHost


async def refresh_assessments(
    ctx: StepContext,
    rollout_id: int,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> dict[str, str]:
    """Assess the runs' hosts again and store the results; returns the coverage gaps
    (host -> why it could not be refreshed)."""
    names = [r.host_name for r in runs]
    async with read_only(ctx.db) as session:
        rows = {
            h.name: h for h in await session.scalars(sa.select(Host).where(Host.name.in_(names)))
        }
        before = await assessment.latest(session, hosts=names)
    assessor = ctx.deps.assessor or LiveAssessor(ctx.deps.executor)
    now = ctx.now()
    gaps: dict[str, str] = {}
    records: list[dict[str, Any]] = []

    async def one(name: str) -> tuple[str, list[Finding] | None]:
        host = inventory.get(name)
        if host is None:
            gaps[name] = "not in the inventory"
            return name, None
        row = rows.get(name)
        started = time.monotonic()
        record: dict[str, Any] = {"host": name, "command": "assess", "exit_code": None}
        try:
            async with ctx.sem:
                found = await assessor.assess(
                    host,
                    os_id=row.os_id if row else None,
                    os_version=row.os_version if row else None,
                    package_manager=row.package_manager if row else None,
                    now=now,
                )
        except asyncio.CancelledError:  # past the refresh's time bound
            record["error"] = f"no answer within {ctx.deps.refresh_timeout:g} s"
            raise
        except Exception as exc:  # recorded as a coverage gap and audited, never dropped
            gaps[name] = f"{type(exc).__name__}: {exc}"
            record["error"] = gaps[name]
            return name, None
        finally:
            record["duration_ms"] = round((time.monotonic() - started) * 1000)
            records.append(record)
        return name, list(found)

    tasks = [asyncio.create_task(one(n)) for n in names]
    done: set[asyncio.Task[tuple[str, list[Finding] | None]]] = set()
    if tasks:
        done, late = await asyncio.wait(tasks, timeout=ctx.deps.refresh_timeout)
        for task in late:
            task.cancel()
    results = [t.result() for t in done]
    answered = {name for name, _ in results}
    for name in names:
        if name not in answered and name not in gaps:
            gaps[name] = f"no answer within {ctx.deps.refresh_timeout:g} s"
    # Stored in chunks, each its own short transaction (the last one, with the summary
    # event, is "rollout.refreshed"); after a crash the whole refresh runs again.
    chunks = Chunks(results)
    first = True
    while chunks:
        part, last = chunks.take()
        async with ctx.tx("rollout.refreshed" if last else "rollout.refreshing") as session:
            await audit.lock(session)  # first, as every writer (two rollouts' refreshes)
            chunks.begin()
            for record in records if first else ():
                await ctx.event(session, "host.command", rollout_id, **record)
            for name, findings in part:
                if findings is None:
                    continue
                old = before.get(name, (now, []))[1]
                await assessment.store(
                    session, host=name, findings=assessment.carry_advisories(findings, old), at=now
                )
            if last:
                await ctx.event(
                    session,
                    "rollout.assessments_refreshed",
                    rollout_id,
                    refreshed=sorted(n for n, f in results if f is not None),
                    assessed_at=audit.format_time(now),  # coverage.csv's, for `report verify`
                    coverage_gaps=dict(sorted(gaps.items())),
                )
            chunks.end()
        first = False
    return gaps
