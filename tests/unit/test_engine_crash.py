"""Crash and resume: stop the engine at every persisted step in turn, then let a new
engine on the same database finish. Every host is patched exactly once, none is
skipped, every gate is decided once and the audit chain verifies."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa

from tests.enginekit import Rig, make_plan, plan_dict
from workflows import audit
from workflows.db import Database, read_only
from workflows.models import Approval, Base, Gate, OutboxItem
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine swallows it."""


def crash_plan() -> PatchPlan:
    rings = plan_dict()["rings"]
    rings[0]["batch"] = 1
    rings[2]["batch"] = 2
    rings[2]["failure_budget"] = 1
    return make_plan(rings=rings)


def crash_hosts() -> list[InventoryHost]:
    return [
        InventoryHost(name="dev-01", groups=frozenset({"dev"})),
        InventoryHost(name="stg-01", groups=frozenset({"staging"})),
        InventoryHost(name="prod-01", groups=frozenset({"prod"})),
        InventoryHost(name="prod-02", groups=frozenset({"prod"})),
        InventoryHost(name="prod-03", groups=frozenset({"prod"})),
    ]


def make_rig(db: Database) -> Rig:
    rig = Rig(db, hosts=crash_hosts())
    # dev-01 needs a reboot (kernel); prod-02 turns unhealthy and is rolled back.
    rig.executor.publish("demo-kernel", "1.1")
    rig.executor.state.hosts["dev-01"].installed["demo-kernel"] = "1.0"
    rig.executor.fail("prod-02", "health", "unhealthy")
    return rig


async def _empty(db: Database) -> None:
    async with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


async def _run(db: Database, crash_at: int | None) -> tuple[Rig, int, int, bool]:
    """One rollout; crash after the ``crash_at``-th step if given. Returns the rig, the
    rollout id, the number of steps seen before finishing, and whether it crashed."""
    rig = make_rig(db)
    rollout_id = await rig.start(crash_plan())
    steps = 0

    def hook(_name: str) -> None:
        nonlocal steps
        steps += 1
        if crash_at is not None and steps == crash_at:
            raise Crash(_name)

    crashed = False
    try:
        await rig.approve_all(rig.engine(hook), rollout_id)
    except BaseException as exc:  # a Crash, possibly wrapped in a BaseExceptionGroup
        if not _is_crash(exc):
            raise
        crashed = True
        await rig.approve_all(rig.engine(), rollout_id)
    return rig, rollout_id, steps, crashed


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, Crash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_crash(e) for e in exc.exceptions)
    return False


async def _check(db: Database, rig: Rig, rollout_id: int) -> None:
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded_with_failures", rollout.reason
    states = await rig.host_states(rollout_id)
    assert states == {
        "dev-01": "healthy",
        "stg-01": "healthy",
        "prod-01": "healthy",
        "prod-02": "rolled_back",
        "prod-03": "healthy",
    }
    for host in states:
        assert rig.executor.apply_count(host) == 1, host
    assert rig.executor.calls.count(("dev-01", "reboot")) == 1
    async with read_only(db) as session:
        result = await audit.verify(session)
        gates = (await session.scalars(sa.select(Gate))).all()
        votes = Counter(await session.scalars(sa.select(Approval.gate_id)))
        keys = list(await session.scalars(sa.select(OutboxItem.key)))
    assert result.count > 0
    assert sorted(g.state for g in gates) == ["approved", "approved"]
    assert all(votes[g.id] == g.quorum for g in gates)
    assert len(keys) == len(set(keys))


async def test_rollout_without_crash_sets_the_step_count(db: Database) -> None:
    rig, rollout_id, steps, crashed = await _run(db, None)
    assert not crashed
    await _check(db, rig, rollout_id)
    assert steps > 30


async def test_engine_resumes_after_a_crash_at_every_persisted_step(
    db: Database, request: pytest.FixtureRequest
) -> None:
    _, _, total, _ = await _run(db, None)
    backend = request.node.callspec.params.get("database_url", "sqlite")
    # Every kill point on SQLite; every fourth on PostgreSQL to keep CI short (the
    # per-step logic is the same; the full PostgreSQL matrix runs with -m slow).
    stride = 1 if "sqlite" in str(backend) else 4
    covered = 0
    for crash_at in range(1, total + 1, stride):
        await _empty(db)
        rig, rollout_id, _, crashed = await _run(db, crash_at)
        assert crashed, crash_at
        await _check(db, rig, rollout_id)
        covered += 1
    print(f"crash-and-resume: {covered} kill points of {total} covered")
    assert covered >= total // stride


@pytest.mark.slow
async def test_engine_resumes_after_a_crash_at_every_step_full_matrix(db: Database) -> None:
    _, _, total, _ = await _run(db, None)
    for crash_at in range(1, total + 1):
        await _empty(db)
        rig, rollout_id, _, crashed = await _run(db, crash_at)
        assert crashed
        await _check(db, rig, rollout_id)


async def test_crash_between_apply_and_its_result_reads_the_host_back(db: Database) -> None:
    """The one that matters most: the command ran on the host, the result was lost."""
    rig = make_rig(db)
    rollout_id = await rig.start(crash_plan())

    def hook(name: str) -> None:
        if name == "host.apply.returned":
            raise Crash(name)

    with pytest.raises(BaseException) as caught:
        await rig.engine(hook).run_until_idle()
    assert _is_crash(caught.value)
    assert rig.executor.apply_count("dev-01") == 1
    assert (await rig.host_states(rollout_id))["dev-01"] == "applying"
    await rig.approve_all(rig.engine(), rollout_id)
    assert rig.executor.apply_count("dev-01") == 1
    assert ("dev-01", "facts") in rig.executor.calls  # apply_status read it back
    await _check(db, rig, rollout_id)
