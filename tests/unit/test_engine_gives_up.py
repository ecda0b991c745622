"""Issue 16: an engine step that keeps failing stops being retried after a bound
(``EngineDeps.step_retry_limit``): the host (or the ring and the rollout) fails with
the reason, on-call gets an alert and a ticket is filed; and a rollout with failures
inside the budget ends ``succeeded_with_failures``, saying so in its closing note."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from tests.enginekit import Rig, make_plan
from workflows.db import Database, read_only
from workflows.models import HostRun, OutboxItem, Ticket
from workflows.ports import ApplyResult, HostFacts, InventoryHost, Preflight

DEV = [{"name": "dev", "hosts": "group:dev", "batch": "100%", "failure_budget": 1}]


async def drive(rig: Rig, *, ticks: int = 12) -> None:
    """Tick as a serving leader does (a failed step is idle until the next tick)."""
    engine = rig.engine()
    for _ in range(ticks):
        await engine.run_until_idle(max_ticks=50)


async def outbox_keys(db: Database) -> list[str]:
    async with read_only(db) as session:
        return list(await session.scalars(sa.select(OutboxItem.key).order_by(OutboxItem.id)))


async def test_an_apply_that_always_raises_fails_the_host_after_the_bound_and_alerts(
    db: Database,
) -> None:
    rig = Rig(db)
    real = rig.executor.apply

    async def broken(
        host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult:
        if host.name == "dev-01":
            raise ValueError("no packages given")  # a driver's refusal: not an ExecutorError
        return await real(host, patchset, op_id=op_id)

    rig.executor.apply = broken  # type: ignore[method-assign]
    rollout_id = await rig.start(make_plan(rings=DEV))
    await drive(rig)

    async with read_only(db) as session:
        run = await session.scalar(
            sa.select(HostRun).where(
                HostRun.rollout_id == rollout_id, HostRun.host_name == "dev-01"
            )
        )
        tickets = [(t.subject, t.cause) for t in await session.scalars(sa.select(Ticket))]
    assert run is not None and run.state == "failed"
    assert "the engine gave up on host dev-01 after 5 failed tries" in (run.error or "")
    assert "ValueError: no packages given" in (run.error or "")
    assert (await rig.host_states(rollout_id))["dev-02"] == "healthy"
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    assert f"rollout:{rollout_id}:alert:run:{run.id}:gave-up" in await outbox_keys(db)
    assert ("dev-01", "patch-failed") in tickets


async def test_a_rollout_step_that_always_raises_fails_the_ring_and_the_rollout(
    db: Database,
) -> None:
    rig = Rig(db)
    real = rig.executor.preflight
    calls = {"n": 0}

    async def broken(host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        calls["n"] += 1
        raise RuntimeError("driver bug")

    rig.executor.preflight = broken  # type: ignore[method-assign]
    del real
    plan = make_plan(rings=DEV)  # the ring's start checks pins on one host per platform
    rollout_id = await rig.start(plan)
    await drive(rig)

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "the engine gave up on ring dev after 5 failed tries: RuntimeError" in (
        rollout.reason or ""
    )
    assert (await rig.ring_states(rollout_id)) == {"dev": "failed"}
    assert calls["n"] == 5
    assert f"rollout:{rollout_id}:alert:gave-up" in await outbox_keys(db)
    async with read_only(db) as session:
        tickets = [(t.subject, t.cause) for t in await session.scalars(sa.select(Ticket))]
    assert ("plan:weekly", "patch-failed") in tickets


async def test_an_unreachable_host_inside_the_budget_ends_succeeded_with_failures(
    db: Database,
) -> None:
    rig = Rig(db)
    rig.executor.fail("dev-02", "apply", "unreachable")
    rollout_id = await rig.start(make_plan(rings=DEV))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert (await rig.host_states(rollout_id)) == {"dev-01": "healthy", "dev-02": "unreachable"}
    assert rollout.state == "succeeded_with_failures"
    assert rollout.reason == "1 host(s) failed within the failure budget: dev-02"
    async with read_only(db) as session:
        texts = " ".join(
            str(i.payload)
            for i in await session.scalars(
                sa.select(OutboxItem).where(OutboxItem.key.like("%finished"))
            )
        )
    assert "succeeded with failures" in texts


async def test_facts_that_always_raise_fail_the_rollout_while_assessing(db: Database) -> None:
    rig = Rig(db)

    async def broken(host: InventoryHost) -> HostFacts:
        raise RuntimeError("facts bug")

    rig.executor.facts = broken  # type: ignore[method-assign]
    rollout_id = await rig.start(make_plan(rings=DEV))
    await drive(rig)

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "gave up on ring dev" in (rollout.reason or "")
