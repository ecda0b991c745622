"""A host's health after its patch (and reboot): PatchGate's own checks (HTTP, TCP,
command, systemd, through the :class:`~workflows.ports.HealthChecker`) and the ``tool``
check, the backend's own view of the host (:meth:`~workflows.backends.StatusBackend.status`),
merged into the host's ``health`` results and its state.

The tool is asked once per batch for the batch's hosts, again (after the check's
``interval``) for those not yet well, up to the check's ``retries``: an agent reconnects
some time after a reboot. An error of the tool, or an answer of another shape, is a
failed check on the hosts with the reason, never an engine error. A host whose backend
reports no status of its own (a host on ``ssh`` through ``patchgate_backend`` in a ring
on Satellite) gets the check as passed, "not applicable", saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.backends import DeviceStatus, StatusBackend
from workflows.engine._backend import Resolved, run_backend
from workflows.engine._context import StepContext
from workflows.engine._transitions import set_host
from workflows.hostos import HOST_ONLY_CHECKS, host_family, inventory_family, split_checks
from workflows.models import Host, HostRun, Ring
from workflows.plans import HealthCheck, PatchPlan
from workflows.ports import HealthResult, InventoryHost
from workflows.states import HostEvent

TOOL = "tool"
_DETAIL_CHARS = 300


def tool_checks(checks: Iterable[HealthCheck]) -> list[HealthCheck]:
    return [c for c in checks if c.type == TOOL]


def not_applicable(checks: Iterable[HealthCheck], backend: str) -> list[HealthResult]:
    """The tool checks of a host whose backend reports no host status: passed, saying so."""
    return [
        HealthResult(
            c.name, True, f"not applicable: backend {backend!r} reports no host status of its own"
        )
        for c in tool_checks(checks)
    ]


async def ask_tool(
    backend: Resolved, hosts: Sequence[InventoryHost], checks: Sequence[HealthCheck]
) -> dict[str, list[HealthResult]]:
    """One result per tool check for each host, asking the backend once per round for
    the hosts it has not yet reported well."""
    out: dict[str, list[HealthResult]] = {h.name: [] for h in hosts}
    tool = cast(StatusBackend, backend.batch)
    for check in tool_checks(checks):
        last: dict[str, HealthResult] = {}
        waiting = list(hosts)
        for attempt in range(check.retries + 1):
            answers = await _ask(tool, backend, waiting, check.name)
            last.update(answers)
            waiting = [h for h in waiting if not answers[h.name].ok]
            if not waiting or attempt == check.retries:
                break
            await asyncio.sleep(check.interval.total_seconds())
        for host in hosts:
            out[host.name].append(last[host.name])
    return out


async def _ask(
    tool: StatusBackend, backend: Resolved, hosts: Sequence[InventoryHost], name: str
) -> dict[str, HealthResult]:
    try:
        answer: Any = await tool.status(hosts, backend.options)
        items = list(answer)
    except Exception as exc:  # the tool's failure is the check's, never the engine's
        why = _clip(f"{backend.name} could not report host status: {type(exc).__name__}: {exc}")
        return {h.name: HealthResult(name, False, why) for h in hosts}
    got: dict[str, DeviceStatus] = {}
    odd = 0
    for item in items:
        if isinstance(item, DeviceStatus) and isinstance(item.ok, bool):
            got[str(item.host)] = item
        else:
            odd += 1
    results: dict[str, HealthResult] = {}
    for host in hosts:
        status = got.get(host.name)
        if status is None:
            shape = f" ({odd} answer(s) of an unknown shape)" if odd else ""
            results[host.name] = HealthResult(
                name, False, f"{backend.name} reported no status for this host{shape}"
            )
            continue
        state = _clip(str(status.state or ("ok" if status.ok else "not ok")))
        detail = f"{backend.name}: {state}"
        if not status.ok and status.detail:
            detail += f": {status.detail}"
        results[host.name] = HealthResult(name, status.ok, _clip(detail))
    return results


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


async def check_health(
    ctx: StepContext,
    run: HostRun,
    host: InventoryHost,
    plan: PatchPlan,
    *,
    records: Sequence[dict[str, Any]] = (),
    tool: Sequence[HealthResult] | None = None,
    own: bool = True,
    note: str | None = None,
) -> None:
    """Run the ring's own health checks (unless ``own`` is False: a backend that runs
    none), add the tool checks' results (``tool``; None: not applicable on this host's
    backend) and settle the host healthy or unhealthy."""
    checks = plan.checks_for(plan.rings[await ring_position(ctx, run.ring_id)])
    started = time.monotonic()
    results: list[HealthResult] = []
    if own:
        results = await own_checks(ctx, host, [c for c in checks if c.type != TOOL])
    results += list(tool) if tool is not None else not_applicable(checks, run_backend(run))
    ctx.hook("host.health.returned")

    async def write(session: AsyncSession) -> None:
        fresh = await session.get(HostRun, run.id)
        assert fresh is not None
        for record in records:
            await ctx.event(session, "host.command", run.rollout_id, **record)
        found = [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results]
        await ctx.event(
            session,
            "host.health",
            run.rollout_id,
            host=run.host_name,
            duration_ms=round((time.monotonic() - started) * 1000),
            results=found,
            **({"note": note} if note else {}),
        )
        fresh.health = found
        failed = [r for r in results if not r.ok]
        if failed:
            await set_host(
                ctx,
                session,
                fresh,
                HostEvent.UNHEALTHY,
                error="health check failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            )
        else:
            await set_host(ctx, session, fresh, HostEvent.HEALTHY)
            ctx.patched(session, run.host_name)

    await ctx.host_tx("host.health.result", run.id, write)


async def own_checks(
    ctx: StepContext, host: InventoryHost, checks: Sequence[HealthCheck]
) -> list[HealthResult]:
    """PatchGate's own checks on the host, in the plan's order; a check that cannot run
    on the host's OS (``command``/``systemd`` over SSH on Windows or macOS) is a failed
    result saying why, not run."""
    run_checks: Sequence[HealthCheck] = checks
    refused: dict[int, str] = {}  # position -> why a check cannot run on this host's OS
    if any(c.type in HOST_ONLY_CHECKS for c in checks):
        run_checks, refused = split_checks(await family_of(ctx, host), checks)
    async with ctx.sem:
        results = list(
            await ctx.deps.health.check(host, run_checks) if run_checks or not refused else ()
        )
    if not refused:
        return results
    ran = iter(results)
    return [
        HealthResult(c.name, False, refused[i])
        if i in refused
        else next(ran, HealthResult(c.name, False, "the health checker gave no result"))
        for i, c in enumerate(checks)
    ]


async def family_of(ctx: StepContext, host: InventoryHost) -> str:
    """The host's OS family: its inventory's word, else its last recorded facts'."""
    if inventory_family(host) is None:
        async with ctx.read() as session:
            recorded = await session.scalar(sa.select(Host.os_family).where(Host.name == host.name))
        return host_family(host, recorded)
    return host_family(host)


async def ring_position(ctx: StepContext, ring_id: int) -> int:
    """The position of a ring (its checks come from the plan's ring there)."""
    if (known := ctx.ring_positions.get(ring_id)) is not None:
        return known
    async with ctx.read() as session:
        position = await session.scalar(sa.select(Ring.position).where(Ring.id == ring_id))
    assert position is not None
    ctx.ring_positions[ring_id] = position
    return position


async def batch_tool_results(
    ctx: StepContext,
    plan: PatchPlan,
    backend: Resolved,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> dict[str, list[HealthResult]] | None:
    """The tool checks' results for a batch's hosts on ``backend`` (None: the ring has
    no tool check, or the backend reports no status: not applicable per host)."""
    if not runs:
        return None
    checks = tool_checks(plan.checks_for(plan.rings[await ring_position(ctx, runs[0].ring_id)]))
    if not checks or not backend.caps.status or backend.batch is None:
        return None
    hosts = [inventory[r.host_name] for r in runs if r.host_name in inventory]
    return await ask_tool(backend, hosts, checks)
