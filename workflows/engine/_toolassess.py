"""Assessment through a batch backend (issue 19, item 1).

A host whose backend is a :class:`~workflows.backends.BatchBackend` declaring
``assess`` is assessed by the tool, not by PatchGate's SSH executor: its facts step,
the refresh right before the patch set is pinned and the check that the assessed
versions are installable all take the tool's word (``BatchBackend.assess``, one call
per backend per chunk of :data:`ASSESS_CHUNK` hosts, with the plan's options for it).
A host the tool reports unreachable, or could not assess, is lost at the facts step and
a coverage gap at the refresh, with the tool's error.

Hosts of a batch backend that declares no ``assess`` are assessed through the SSH
executor as before backends existed (a host SSH cannot reach is lost with the
executor's error): PatchGate never patches a host it has not assessed itself or
through its backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from workflows.backends import HostAssessment
from workflows.engine._backend import Resolved, resolve, run_backend
from workflows.engine._context import StepContext
from workflows.errors import ConfigError
from workflows.models import HostRun
from workflows.notify import texts
from workflows.plans import PatchPlan
from workflows.ports import HostFacts, InventoryHost, Simulation

# Hosts per BatchBackend.assess call (one tool job each for ansible/awx).
ASSESS_CHUNK = 200


def tool_assessed(
    ctx: StepContext, plan: PatchPlan | None, runs: Sequence[HostRun]
) -> dict[str, tuple[Resolved, list[HostRun]]]:
    """The runs assessed through their backend, by backend name: those whose backend
    is a batch backend declaring ``assess``. Every other run is assessed over SSH."""
    if plan is None:
        return {}
    chosen: dict[str, tuple[Resolved, list[HostRun]]] = {}
    usable: dict[str, Resolved | None] = {}
    for run in runs:
        name = run_backend(run)
        if name not in usable:
            try:
                resolved: Resolved | None = resolve(ctx, plan, name)
            except ConfigError:
                resolved = None  # the layout refused it already; not this step's business
            if resolved is not None and (resolved.batch is None or not resolved.caps.assess):
                resolved = None
            usable[name] = resolved
        found = usable[name]
        if found is not None:
            chosen.setdefault(name, (found, []))[1].append(run)
    return chosen


async def assess_through_tools(
    ctx: StepContext,
    groups: Mapping[str, tuple[Resolved, list[HostRun]]],
    inventory: Mapping[str, InventoryHost],
) -> tuple[dict[str, HostAssessment], list[dict[str, Any]]]:
    """Ask each backend for its hosts' assessments; every run's host gets an answer
    (the tool's, or an error saying why there is none), and one ``host.command``
    audit record (``command`` = ``<backend>:assess``)."""
    answers: dict[str, HostAssessment] = {}
    records: list[dict[str, Any]] = []

    async def chunk(resolved: Resolved, hosts: list[InventoryHost]) -> None:
        assert resolved.batch is not None
        started = time.monotonic()
        try:
            found = list(await resolved.batch.assess(hosts, resolved.options))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the tool's failure is every host's coverage gap
            why = f"{type(exc).__name__}: {exc}"
            found = [HostAssessment(host=h.name, reachable=True, error=why) for h in hosts]
        took = round((time.monotonic() - started) * 1000)
        by_name = {a.host: a for a in found}
        for host in hosts:
            answer = by_name.get(host.name) or HostAssessment(
                host=host.name, reachable=True, error="the tool reported nothing for this host"
            )
            if answer.error is None and not answer.reachable:
                answer = HostAssessment(host=host.name, reachable=False, error="unreachable")
            answers[host.name] = answer
            record: dict[str, Any] = {
                "host": host.name,
                "command": f"{resolved.name}:assess",
                "backend": resolved.name,
                "exit_code": None,
                "duration_ms": took,
            }
            if answer.error is not None:
                record["error"] = f"{resolved.name}: {answer.error}"
            records.append(record)

    calls = []
    for resolved, runs in groups.values():
        hosts = []
        for run in runs:
            host = inventory.get(run.host_name)
            if host is None:
                answers[run.host_name] = HostAssessment(
                    host=run.host_name, reachable=False, error=texts.HOST_NOT_IN_INVENTORY
                )
            else:
                hosts.append(host)
        for i in range(0, len(hosts), ASSESS_CHUNK):
            calls.append(chunk(resolved, hosts[i : i + ASSESS_CHUNK]))
    await asyncio.gather(*calls)
    return answers, records


def failure_text(backend: str, answer: HostAssessment) -> str | None:
    """Why the tool's answer leaves the host unassessed (None: it is assessed)."""
    if answer.error is not None:
        return f"{backend}: {answer.error}"
    return None


def tool_platform(backend: str, answer: HostAssessment) -> str:
    """The platform a tool-assessed host's share of the patch set is pinned under: its
    facts' when the tool reports them, else one per backend."""
    return answer.facts.platform if answer.facts is not None else f"{backend}-managed"


def trusted_simulation(specs: Sequence[str]) -> Simulation:
    """The versions a tool-assessed host would install: those the tool reported as
    candidates (PatchGate cannot simulate through a tool; the tool's job installs
    exactly the pinned versions and the engine compares what it reports after)."""
    installs = {}
    for spec in specs:
        name, _, version = spec.partition("=")
        if version:
            installs[name] = version
    return Simulation(installs=installs)


FactsAnswer = tuple[HostRun, HostFacts | None, str | None, dict[str, Any] | None]


async def tool_facts(
    ctx: StepContext,
    plan: PatchPlan | None,
    runs: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
) -> tuple[dict[str, FactsAnswer], dict[str, str]]:
    """The facts step's answers for tool-assessed runs (host -> (run, facts, error,
    audit record), as the SSH path's), and the platform of each host the tool assessed
    (a host without one is lost with the tool's error)."""
    groups = tool_assessed(ctx, plan, runs)
    if not groups:
        return {}, {}
    answers, records = await assess_through_tools(ctx, groups, inventory)
    by_host = {r["host"]: r for r in records}
    told: dict[str, FactsAnswer] = {}
    platforms: dict[str, str] = {}
    for name, (_, members) in groups.items():
        for run in members:
            answer = answers[run.host_name]
            why = failure_text(name, answer)
            if why is None:
                platforms[run.host_name] = tool_platform(name, answer)
            told[run.host_name] = (run, answer.facts, why, by_host.get(run.host_name))
    return told, platforms
