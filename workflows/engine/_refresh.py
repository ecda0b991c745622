"""The refresh right before a patch set is pinned: assess every pending host of the
rollout again, as many at once as the SSH concurrency allows, within
``EngineDeps.refresh_timeout`` seconds, and store what came back. A host that could not
be refreshed keeps its earlier assessment (used only while it is fresh) and is reported
as a coverage gap of the pin.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from workflows import assessment, audit
from workflows.assessment import Finding, LiveAssessor, reported_findings
from workflows.db import in_parts, read_only
from workflows.engine._context import Chunks, StepContext
from workflows.engine._toolassess import assess_through_tools, failure_text, tool_assessed
from workflows.models import Host, HostRun
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost


async def refresh_assessments(
    ctx: StepContext,
    rollout_id: int,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    *,
    plan: PatchPlan | None = None,
) -> dict[str, str]:
    """Assess the runs' hosts again (a tool-assessed host through its backend, see
    ``_toolassess``) and store the results; returns the coverage gaps (host -> why it
    could not be refreshed)."""
    names = [r.host_name for r in runs]
    groups = tool_assessed(ctx, plan, runs)
    by_tool = {r.host_name for _, members in groups.values() for r in members}
    # What the assessor needs of each host's row (not the whole row: at 100,000 hosts the
    # ORM objects were hundreds of MB). The assessments before are read a chunk at a
    # time, when the chunk's new ones are stored.
    columns = (Host.name, Host.os_id, Host.os_version, Host.package_manager)
    async with read_only(ctx.db) as session:
        rows = {
            h.name: h
            for part in in_parts(names)
            for h in await session.execute(sa.select(*columns).where(Host.name.in_(part)))
        }
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
        await ctx.give_way()  # as ctx.command does
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

    async def tools() -> list[tuple[str, list[Finding] | None]]:
        answers, tool_records = await assess_through_tools(ctx, groups, inventory)
        records.extend(tool_records)
        found: list[tuple[str, list[Finding] | None]] = []
        for backend, (_, members) in groups.items():
            for run in members:
                answer, row = answers[run.host_name], rows.get(run.host_name)
                why = failure_text(backend, answer)
                if why is not None:
                    gaps[run.host_name] = why
                    continue
                findings = reported_findings(
                    inventory[run.host_name],
                    answer.upgradable,
                    answer.advisories,
                    os_id=answer.facts.os_id if answer.facts else row.os_id if row else None,
                    os_version=answer.facts.os_version if answer.facts else None,
                    now=now,
                    source=f"{backend} {run.host_name}",
                    known_exploited=ctx.deps.known_exploited,
                )
                found.append((run.host_name, findings))
        return found

    # A few workers take the hosts in turn (not a task per host: creating 10,000 tasks
    # was one long stretch of the event loop, and 100,000 of them took memory).
    queue = deque(n for n in names if n not in by_tool)
    results: list[tuple[str, list[Finding] | None]] = []

    async def worker() -> None:
        while queue:
            results.append(await one(queue.popleft()))

    tasks = [asyncio.create_task(worker()) for _ in range(min(len(queue), ctx.deps.concurrency))]
    tool_task = asyncio.create_task(tools()) if groups else None
    if tasks or tool_task:
        every = [*tasks, *([tool_task] if tool_task else [])]
        done, late = await asyncio.wait(every, timeout=ctx.deps.refresh_timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)  # each host cut short has recorded why
        for task in done:  # an error no host's assessment caught fails the step, as before
            if task is not tool_task and not task.cancelled() and task.exception() is not None:
                task.result()
        if tool_task is not None and tool_task in done:
            results += tool_task.result()
    answered = {name for name, _ in results}
    for name in names:
        if name not in answered and name not in gaps:
            gaps[name] = f"no answer within {ctx.deps.refresh_timeout:g} s"
    # Stored in chunks, each its own short transaction (the last one, with the summary
    # event, is "rollout.refreshed"): first the hosts' command records (in order, as one
    # transaction wrote them all before: 100,000 of them held the database 15 s), then
    # their assessments. After a crash the whole refresh runs again.
    work: list[tuple[str, Any]] = [("record", r) for r in records]
    work += [("found", (name, found)) for name, found in results if found is not None]
    chunks = Chunks(work)
    while chunks:
        part, last = chunks.take()
        async with ctx.tx("rollout.refreshed" if last else "rollout.refreshing") as session:
            await audit.lock(session)  # first, as every writer (two rollouts' refreshes)
            chunks.begin()
            found = [item for kind, item in part if kind == "found"]
            for kind, item in part:
                if kind == "record":
                    await ctx.event(session, "host.command", rollout_id, **item)
            before = await assessment.latest(session, hosts=[name for name, _ in found])
            await assessment.store_many(
                session,
                [
                    (name, assessment.carry_advisories(new, before.get(name, (now, []))[1]))
                    for name, new in found
                ],
                at=now,
            )
            del before
            if last:
                await ctx.event(
                    session,
                    "rollout.assessments_refreshed",
                    rollout_id,
                    refreshed=sorted(n for n, f in results if f is not None),
                    assessed_at=audit.format_time(now),  # coverage.csv's, for `report verify`
                    coverage_gaps=dict(sorted(gaps.items())),
                )
        chunks.end()  # after the commit: the ORM's flush is most of the writing
    return gaps
