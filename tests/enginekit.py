"""Small factories for engine tests: a three-ring plan, hosts, and a driven engine."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker, SimState
from workflows.clock import ManualClock
from workflows.db import Database, read_only, unit_of_work
from workflows.engine import Engine, EngineDeps, StepHook
from workflows.gates import Actor, Outcome, decide
from workflows.models import Decision, Gate, HostRun, Ring, Rollout
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost
from workflows.requests import start_rollout

REQUESTER = "U0REQUEST"
OPERATORS = frozenset({REQUESTER, "U0OPS2", "U0APPROVE1"})
APPROVER_1, APPROVER_2, OUTSIDER = "U0APPROVE1", "U0APPROVE2", "U0OUTSIDE"


def plan_dict(**overrides: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "weekly",
        "packages": {"include": ["*"]},
        "reboot": "if-required",
        "health_checks": [{"name": "http", "type": "http", "url": "http://{address}/health"}],
        "slack": {"channel": "C0PATCHES"},
        "rings": [
            {"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 0},
            {
                "name": "staging",
                "hosts": "group:staging",
                "batch": "50%",
                "gate": {
                    "type": "approval",
                    "approvers": {"users": [APPROVER_1, APPROVER_2]},
                    "timeout": "4h",
                },
            },
            {
                "name": "prod",
                "hosts": "group:prod",
                "batch": 2,
                "failure_budget": 1,
                "gate": {
                    "type": "approval",
                    "quorum": 2,
                    "approvers": {"users": [APPROVER_1, APPROVER_2, REQUESTER]},
                    "timeout": "8h",
                },
            },
        ],
    }
    plan.update(overrides)
    return plan


def make_plan(**overrides: Any) -> PatchPlan:
    return PatchPlan.model_validate(plan_dict(**overrides))


class StaticInventory:
    def __init__(self, hosts: Sequence[InventoryHost]) -> None:
        self._hosts = list(hosts)

    def hosts(self) -> Sequence[InventoryHost]:
        return self._hosts


def make_hosts() -> list[InventoryHost]:
    hosts = [InventoryHost(name=f"dev-{i:02d}", groups=frozenset({"dev"})) for i in (1, 2)]
    hosts += [InventoryHost(name=f"stg-{i:02d}", groups=frozenset({"staging"})) for i in (1, 2)]
    hosts += [InventoryHost(name=f"prod-{i:02d}", groups=frozenset({"prod"})) for i in range(1, 7)]
    return hosts


def make_executor(hosts: Sequence[InventoryHost]) -> RecordingExecutor:
    executor = RecordingExecutor(
        SimState(
            repo={"openssl": ["3.0.11-1", "3.0.13-1"], "demo-app": ["1.0", "1.1"]},
            security=["openssl=3.0.13-1"],
        )
    )
    for host in hosts:
        executor.add_host(host.name, {"openssl": "3.0.11-1", "demo-app": "1.0", "bash": "5.2"})
    return executor


class Rig:
    """A database, simulated hosts, a manual clock, and engines built on them."""

    def __init__(self, db: Database, *, hosts: Sequence[InventoryHost] | None = None) -> None:
        self.db = db
        self.hosts = list(hosts or make_hosts())
        self.inventory = StaticInventory(self.hosts)
        self.executor = make_executor(self.hosts)
        self.health = RecordingHealthChecker(self.executor)
        self.clock = ManualClock(dt.datetime(2026, 1, 4, 2, 0, tzinfo=dt.UTC))

    def engine(self, hook: StepHook | None = None, **deps: Any) -> Engine:
        """An engine on the rig (``deps``: more EngineDeps, e.g. ``concurrency``)."""
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                **self.engine_backends(),
                **deps,
            ),
            hook=hook,
        )

    def engine_backends(self) -> dict[str, Any]:
        """More EngineDeps for subclasses whose engines have backends (none here)."""
        return {}

    async def start(self, plan: PatchPlan | None = None, *, by: str = REQUESTER) -> int:
        async with unit_of_work(self.db) as session:
            result = await start_rollout(
                session,
                plan=plan or make_plan(),
                actor=Actor(by),
                operators=OPERATORS,
                now=self.clock.now(),
            )
        assert isinstance(result, Rollout), result
        return result.id

    async def rollout(self, rollout_id: int) -> Rollout:
        async with read_only(self.db) as session:
            rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout

    async def open_gate(self, rollout_id: int) -> Gate | None:
        async with read_only(self.db) as session:
            return await session.scalar(
                sa.select(Gate).where(Gate.rollout_id == rollout_id, Gate.state == "open")
            )

    async def vote(
        self,
        gate: Gate,
        user: str,
        decision: Decision = Decision.APPROVE,
        *,
        shown_hash: str | None = None,
        reason: str | None = None,
    ) -> Outcome:
        async with unit_of_work(self.db) as session:
            return await decide(
                session,
                gate_id=gate.id,
                actor=Actor(user, source="cli"),
                decision=decision,
                shown_hash=shown_hash if shown_hash is not None else gate.patchset_hash,
                reason=reason,
                now=self.clock.now(),
            )

    async def approve_all(self, engine: Engine, rollout_id: int) -> None:
        """Drive to the end, approving every gate with two approvers."""
        for _ in range(10):
            await engine.run_until_idle()
            gate = await self.open_gate(rollout_id)
            if gate is None:
                return
            await self.vote(gate, APPROVER_1)
            if gate.quorum > 1:
                await self.vote(gate, APPROVER_2)
        raise AssertionError("too many gates")

    async def host_states(self, rollout_id: int) -> dict[str, str]:
        async with read_only(self.db) as session:
            rows = await session.execute(
                sa.select(HostRun.host_name, HostRun.state).where(HostRun.rollout_id == rollout_id)
            )
        return {name: state for name, state in rows.all()}

    async def outcome(self, rollout_id: int) -> str:
        """The rollout's state, then each host that did not end healthy with its state and
        error: what an assertion on a rollout's end should print when it fails."""
        async with read_only(self.db) as session:
            rollout = await session.get(Rollout, rollout_id)
            rows = await session.execute(
                sa.select(HostRun.host_name, HostRun.state, HostRun.error)
                .where(HostRun.rollout_id == rollout_id, HostRun.state != "healthy")
                .order_by(HostRun.host_name)
            )
        assert rollout is not None
        lines = [rollout.state] + [f"  {n}: {s}: {e}" for n, s, e in rows.all()]
        return "\n".join(lines)

    async def ring_states(self, rollout_id: int) -> dict[str, str]:
        async with read_only(self.db) as session:
            rows = await session.execute(
                sa.select(Ring.name, Ring.state).where(Ring.rollout_id == rollout_id)
            )
        return {name: state for name, state in rows.all()}
