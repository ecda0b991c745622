"""Engine tests across backends (issue 19): a plan whose last ring is patched by a
recording batch backend, hosts of which one picks its backend by inventory variable,
and an engine given both the SSH backend and the batch one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from integrations.backends import build_backends
from integrations.testing.batch import FakeBatchBackend
from tests.enginekit import Rig, make_plan, plan_dict
from workflows.backends import HOST_BACKEND_VAR, BackendDeclaration
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps, StepHook
from workflows.models import BackendJob, HostRun
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost


def mixed_plan(**overrides: Any) -> PatchPlan:
    """dev and staging on ssh (stg-02 on the batch backend by its inventory variable),
    prod on the batch backend."""
    rings = plan_dict()["rings"]
    rings[0]["batch"] = 1
    rings[1]["batch"] = 2
    rings[2]["batch"] = 2
    rings[2]["failure_budget"] = 1
    rings[2]["backend"] = "batch"
    values: dict[str, Any] = {"rings": rings, "backends": {"ssh": {}, "batch": {}}}
    values.update(overrides)
    return make_plan(**values)


def mixed_hosts() -> list[InventoryHost]:
    return [
        InventoryHost(name="dev-01", groups=frozenset({"dev"})),
        InventoryHost(name="stg-01", groups=frozenset({"staging"})),
        InventoryHost(
            name="stg-02", groups=frozenset({"staging"}), vars={HOST_BACKEND_VAR: "batch"}
        ),
        InventoryHost(name="prod-01", groups=frozenset({"prod"})),
        InventoryHost(name="prod-02", groups=frozenset({"prod"})),
        InventoryHost(name="prod-03", groups=frozenset({"prod"})),
    ]


def tool_engine(
    rig: Rig, tools: Mapping[str, BackendDeclaration], hook: StepHook | None = None
) -> Engine:
    """An engine on the rig's simulated hosts with every backend, ``tools`` (by name) as
    built by the test, following jobs without waiting."""
    known = {k: v for k, v in tools.items() if k in _BUILT_IN}
    extra = {k: v for k, v in tools.items() if k not in _BUILT_IN}
    return Engine(
        EngineDeps(
            db=rig.db,
            executor=rig.executor,
            health=rig.health,
            inventory=rig.inventory,
            clock=rig.clock,
            backends=build_backends(executor=rig.executor, extra=extra, **known),
            job_poll=0.0,
            job_wait=0.0,
        ),
        hook=hook,
    )


async def only_failed(rig: Rig, rollout_id: int, host: str, backend: str) -> HostRun:
    """The run of ``host``, after checking it alone failed (through ``backend``'s apply
    job) and the rollout settled ``succeeded_with_failures``."""
    states = await rig.host_states(rollout_id)
    assert states.pop(host) == "failed"
    assert set(states.values()) == {"healthy"}
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    async with read_only(rig.db) as session:
        run = await session.scalar(sa.select(HostRun).where(HostRun.host_name == host))
    assert run is not None and run.backend == backend
    assert run.op_id is not None and run.op_id.endswith(f"-{backend}-apply")
    return run


# The tool backends build_backends takes by keyword (the others go in ``extra``).
_BUILT_IN = ("ansible", "awx", "automox", "satellite", "ninjaone", "tanium")


class ToolRig(Rig):
    """A Rig whose engines have the SSH backend and the tool backends given by name, as
    :func:`build_backends` takes them (``{"tanium": backend}``, ``{"extra": {...}}``)."""

    def __init__(
        self,
        db: Database,
        *,
        hosts: list[InventoryHost],
        tools: dict[str, Any],
        job_wait: float = 0.0,
    ) -> None:
        super().__init__(db, hosts=hosts)
        self.tools = tools
        self.job_wait = job_wait

    def engine_backends(self) -> dict[str, Any]:
        return {
            "backends": build_backends(executor=self.executor, **self.tools),
            "job_poll": 0.0,
            "job_wait": self.job_wait,
        }


class BackendRig(ToolRig):
    """A Rig whose engines have the SSH backend and a recording batch backend
    (``batch``) on the same simulated hosts."""

    def __init__(self, db: Database, *, hosts: list[InventoryHost] | None = None) -> None:
        super().__init__(db, hosts=hosts or mixed_hosts(), tools={})
        self.batch = FakeBatchBackend(self.executor, name="batch")
        self.tools = {"extra": {"batch": self.batch}}
        self.known_exploited: dict[str, dt.date | None] = {}  # the KEV list the engine has

    def engine_backends(self) -> dict[str, Any]:
        return {**super().engine_backends(), "known_exploited": self.known_exploited}

    def batch_applies(self, host: str) -> int:
        """How many apply jobs changed this host (the fake records their keys)."""
        return self.batch.applies[host]

    async def jobs(self) -> list[BackendJob]:
        async with read_only(self.db) as session:
            return list(await session.scalars(sa.select(BackendJob).order_by(BackendJob.id)))
