"""The check, before a patch set is pinned, that the assessed versions of a group of
hosts can still be installed: simulated on the group's first host that answers (a
tool-assessed host: the tool's versions, trusted; see ``_toolassess``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from workflows.engine._context import StepContext
from workflows.engine._toolassess import trusted_simulation
from workflows.errors import HostUnreachable
from workflows.models import HostRun
from workflows.notify import texts
from workflows.ports import InventoryHost, Simulation


@dataclass
class Tried:
    host: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    lost: dict[int, str] = field(default_factory=dict)


async def simulate_group(
    ctx: StepContext,
    specs: list[str],
    group: Sequence[HostRun],
    inventory: Mapping[str, InventoryHost],
    trusted: Collection[str] = (),
) -> tuple[Simulation | None, str | None, Tried]:
    """Simulate a group's specs on its first host that answers (a tool-assessed host:
    the tool's versions, trusted). Returns the simulation, or an error text when a host
    answered but refused the assessed versions."""
    tried = Tried()
    for run in group:
        if run.host_name in trusted:
            tried.host = run.host_name
            return trusted_simulation(specs), None, tried
        host = inventory.get(run.host_name)
        if host is None:
            tried.lost[run.id] = texts.HOST_NOT_IN_INVENTORY
            continue
        tried.host = run.host_name
        simulation, error, record = await ctx.command(
            host, "simulate", partial(ctx.deps.executor.simulate, host, specs)
        )
        tried.records.append(record)
        if isinstance(error, HostUnreachable):
            tried.lost[run.id] = str(error)
            continue
        if error is not None or simulation is None:
            return None, str(error), tried  # e.g. an assessed version is gone
        return simulation, None, tried
    return None, None, tried
