"""Engine tests across backends (issue 19): a plan whose last ring is patched by a
recording batch backend, hosts of which one picks its backend by inventory variable,
and an engine given both the SSH backend and the batch one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from integrations.backends import build_backends
from integrations.testing.batch import FakeBatchBackend
from tests.enginekit import Rig, make_plan, plan_dict
from workflows.backends import HOST_BACKEND_VAR
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps, StepHook
from workflows.models import BackendJob
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


class BackendRig(Rig):
    """A Rig whose engines have the SSH backend and a recording batch backend
    (``batch``) on the same simulated hosts."""

    def __init__(self, db: Database, *, hosts: list[InventoryHost] | None = None) -> None:
        super().__init__(db, hosts=hosts or mixed_hosts())
        self.batch = FakeBatchBackend(self.executor, name="batch")
        self.known_exploited: dict[str, dt.date | None] = {}  # the KEV list the engine has

    def engine(self, hook: StepHook | None = None) -> Engine:
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                backends=build_backends(executor=self.executor, extra={"batch": self.batch}),
                job_poll=0.0,
                job_wait=0.0,
                known_exploited=self.known_exploited,
            ),
            hook=hook,
        )

    def batch_applies(self, host: str) -> int:
        """How many apply jobs changed this host (the fake records their keys)."""
        return self.batch.applies[host]

    async def jobs(self) -> list[BackendJob]:
        async with read_only(self.db) as session:
            return list(await session.scalars(sa.select(BackendJob).order_by(BackendJob.id)))
