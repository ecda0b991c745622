"""Which backend works on a host, and what it can do (issue 19).

A host run's backend is chosen when the rollout is laid out (the host's inventory
variable ``patchgate_backend`` over its ring's ``backend``, over the plan's) and stored
on the run. A backend declaring ``per_host`` is driven host by host through the
engine's executor (today's path); any other is a :class:`BatchBackend` given one job
per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from workflows.backends import (
    DEFAULT_BACKEND,
    HOST_BACKEND_VAR,
    BatchBackend,
    Capabilities,
    host_backend,
)
from workflows.engine._context import StepContext
from workflows.errors import ConfigError
from workflows.models import HostRun
from workflows.plans import PatchPlan, check_backends
from workflows.ports import InventoryHost

# What ``ssh`` can do when the engine was given no backends (tests, older wiring):
# PatchGate's own executor, host by host, as before backends existed.
_BUILTIN_SSH = Capabilities(
    per_host=True, rollback=True, reboot=True, health=True, assess=True, inventory=False
)


@dataclass(frozen=True)
class Resolved:
    """A backend as a ring uses it: its name, capabilities with the plan's options,
    and the batch backend itself (None: per host, through the executor)."""

    name: str
    caps: Capabilities
    options: Mapping[str, Any]
    batch: BatchBackend | None


def run_backend(run: HostRun) -> str:
    """The backend of a host run (runs from before backends: ``ssh``)."""
    return run.backend or DEFAULT_BACKEND


def resolve(ctx: StepContext, plan: PatchPlan, name: str) -> Resolved:
    """The backend ``name`` as this plan configures it; ConfigError if the engine has none."""
    options = plan.backend_options(name)
    declaration = ctx.deps.backends.get(name)
    if declaration is None:
        if name == DEFAULT_BACKEND and not ctx.deps.backends:
            return Resolved(name, _BUILTIN_SSH, options, None)
        raise ConfigError([f"backend {name!r} is not available to this engine"])
    caps = declaration.capabilities(options)
    if caps.per_host:
        return Resolved(name, caps, options, None)
    return Resolved(name, caps, options, cast(BatchBackend, declaration))


def reached_over_ssh(ctx: StepContext, plan: PatchPlan, runs: Iterable[HostRun]) -> list[HostRun]:
    """The runs whose backend is per host (PatchGate's executor reaches the host over
    SSH), in order. A batch backend's hosts are reached by its tool, never by PatchGate;
    a backend this engine does not have counts as not per host (the layout or the batch
    says why, not this)."""
    per_host: dict[str, bool] = {}
    chosen = []
    for run in runs:
        name = run_backend(run)
        if name not in per_host:
            try:
                per_host[name] = resolve(ctx, plan, name).caps.per_host
            except ConfigError:
                per_host[name] = False
        if per_host[name]:
            chosen.append(run)
    return chosen


def layout_problems(
    ctx: StepContext, plan: PatchPlan, hosts: Iterable[tuple[str, InventoryHost]]
) -> tuple[dict[str, str], list[str]]:
    """Each laid-out host's backend (host name -> backend), and why the rollout cannot
    start: a host naming a backend its plan does not configure, a backend this engine
    does not have, or one that cannot do what the plan asks. ``hosts``: (ring, host)."""
    chosen: dict[str, str] = {}
    problems: list[str] = []
    configured = plan.configured_backends()
    checked: dict[str, str | None] = {}
    for ring, host in hosts:
        name = host_backend(host, plan.backend_for(ring))
        chosen[host.name] = name
        if name not in configured:
            problems.append(
                f"host {host.name}: {HOST_BACKEND_VAR}={name!r} is not a backend plan "
                f"{plan.name} configures ({', '.join(sorted(configured))}); add it under "
                "backends:"
            )
            continue
        if name not in checked:
            checked[name] = _unusable(ctx, plan, name)
        why = checked[name]
        if why is not None:
            problems.append(f"host {host.name}: {why}")
    return chosen, problems


def _unusable(ctx: StepContext, plan: PatchPlan, name: str) -> str | None:
    """Why backend ``name`` cannot work for this plan (None: it can)."""
    try:
        resolved = resolve(ctx, plan, name)
    except ConfigError as exc:
        return str(exc)
    declaration = ctx.deps.backends.get(name)
    if declaration is None:
        return None
    bad = list(declaration.check_options(resolved.options))
    if bad:
        return f"backend {name!r}: " + "; ".join(bad)
    lines = [
        msg
        for _, msg in check_backends(plan, ctx.deps.backends)
        if msg.startswith(f"backend {name!r}")
    ]
    return lines[0] if lines else None
