"""Crash and resume across backends (issue 19): stop the engine at every persisted step
of a rollout whose rings span the SSH backend and a batch backend, then let a new
engine on the same database finish. No job is ever submitted twice (the engine finds
it by its key), every host is patched once, and the audit chain verifies."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.backendkit import BackendRig, mixed_plan
from workflows import audit
from workflows.db import Database, read_only
from workflows.models import Base, Event


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine swallows it."""


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, Crash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_crash(e) for e in exc.exceptions)
    return False


def make_rig(db: Database) -> BackendRig:
    rig = BackendRig(db)
    # dev-01 (ssh) and prod-01 (batch) need a reboot; prod-02 (batch) turns unhealthy
    # and is rolled back by a rollback job.
    rig.executor.publish("demo-kernel", "1.1")
    for name in ("dev-01", "prod-01"):
        rig.executor.state.hosts[name].installed["demo-kernel"] = "1.0"
    rig.executor.fail("prod-02", "health", "unhealthy")
    return rig


async def _empty(db: Database) -> None:
    async with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())


async def _run(
    db: Database, crash_at: int | None, *, slow: int = 0
) -> tuple[BackendRig, int, list[str], bool]:
    rig = make_rig(db)
    rig.batch.slow_polls = slow
    rollout_id = await rig.start(mixed_plan())
    steps: list[str] = []

    def hook(name: str) -> None:
        steps.append(name)
        if crash_at is not None and len(steps) == crash_at:
            raise Crash(name)

    crashed = False
    try:
        await rig.approve_all(rig.engine(hook), rollout_id)
    except BaseException as exc:
        if not _is_crash(exc):
            raise
        crashed = True
        await rig.approve_all(rig.engine(), rollout_id)
    return rig, rollout_id, steps, crashed


async def _check(db: Database, rig: BackendRig, rollout_id: int) -> None:
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded_with_failures", rollout.reason
    assert await rig.host_states(rollout_id) == {
        "dev-01": "healthy",
        "stg-01": "healthy",
        "stg-02": "healthy",
        "prod-01": "healthy",
        "prod-02": "rolled_back",
        "prod-03": "healthy",
    }
    for host in ("dev-01", "stg-01"):
        assert rig.executor.apply_count(host) == 1, host
    for host in ("stg-02", "prod-01", "prod-02", "prod-03"):
        assert rig.executor.apply_count(host) == 0, host  # never through the executor
        assert rig.batch_applies(host) == 1, host
    assert rig.executor.installed_on("prod-02")["openssl"] == "3.0.11-1"  # rolled back
    assert rig.executor.calls.count(("dev-01", "reboot")) == 1
    assert set(rig.batch.submits.values()) == {1}, rig.batch.submits  # never twice
    jobs = await rig.jobs()
    assert sorted((j.action, tuple(j.hosts)) for j in jobs) == [
        ("apply", ("prod-01", "prod-02")),
        ("apply", ("prod-03",)),
        ("apply", ("stg-02",)),
        ("reboot", ("prod-01",)),
        ("rollback", ("prod-02",)),
    ]
    assert {j.state for j in jobs} == {"done"}
    assert set(rig.batch.submits) == {j.key for j in jobs}
    async with read_only(db) as session:
        assert (await audit.verify(session)).count > 0


async def test_mixed_rollout_without_crash_passes_every_job_kill_point(db: Database) -> None:
    rig, rollout_id, steps, crashed = await _run(db, None)
    assert not crashed
    await _check(db, rig, rollout_id)
    for action in ("apply", "reboot", "rollback"):
        for point in ("intent", "submitted", "stored", "followed", "result"):
            assert f"job.{action}.{point}" in steps, (action, point)


async def test_mixed_rollout_resumes_after_a_crash_at_every_persisted_step(
    db: Database, request: pytest.FixtureRequest
) -> None:
    _, _, steps, _ = await _run(db, None)
    backend = request.node.callspec.params.get("database_url", "sqlite")
    # SQLite: every kill point of a job, and every tenth of the others (the per-host
    # path, which test_engine_crash covers step by step); PostgreSQL: every fourth job
    # kill point, to keep CI short. The full matrix runs with -m slow.
    job_points = [i + 1 for i, name in enumerate(steps) if name.startswith("job.")]
    assert len(job_points) >= 15
    if "sqlite" in str(backend):
        points = sorted(set(job_points) | set(range(1, len(steps) + 1, 10)))
    else:
        points = job_points[::4]
    print(f"crash-and-resume across backends: {len(points)} of {len(steps)} kill points")
    for crash_at in points:
        await _empty(db)
        rig, rollout_id, _, crashed = await _run(db, crash_at)
        assert crashed, crash_at
        await _check(db, rig, rollout_id)


@pytest.mark.slow
async def test_mixed_rollout_resumes_after_a_crash_at_every_step_full_matrix(
    db: Database,
) -> None:
    _, _, steps, _ = await _run(db, None)
    for crash_at in range(1, len(steps) + 1):
        await _empty(db)
        rig, rollout_id, _, crashed = await _run(db, crash_at)
        assert crashed, crash_at
        await _check(db, rig, rollout_id)


@pytest.mark.parametrize("point", ["job.apply.intent", "job.apply.submitted"])
async def test_a_job_submitted_before_a_crash_is_found_by_its_key_not_submitted_again(
    db: Database, point: str
) -> None:
    await _empty(db)
    rig = make_rig(db)
    rollout_id = await rig.start(mixed_plan())

    def hook(name: str) -> None:
        if name == point:
            raise Crash(name)

    with pytest.raises(BaseException) as caught:
        await rig.approve_all(rig.engine(hook), rollout_id)
    assert _is_crash(caught.value)
    (job,) = await rig.jobs()
    assert job.state == "intended" and job.job_id is None
    assert (await rig.host_states(rollout_id))["stg-02"] == "applying"
    submitted_before = rig.batch.submits[job.key]
    assert submitted_before == (1 if point == "job.apply.submitted" else 0)
    await rig.approve_all(rig.engine(), rollout_id)
    assert ("find", job.key) in rig.batch.calls
    assert rig.batch.submits[job.key] == 1
    await _check(db, rig, rollout_id)
    async with read_only(db) as session:
        bodies = list(
            await session.scalars(
                sa.select(Event.body).where(Event.kind == "backend.job.submitted")
            )
        )
    found = [json.loads(b) for b in bodies]
    first = next(d.get("data", d) for d in found if d.get("data", d)["key"] == job.key)
    assert first["found_after_restart"] is (point == "job.apply.submitted")


async def test_a_still_running_job_is_followed_again_by_the_next_engine(db: Database) -> None:
    await _empty(db)
    rig = make_rig(db)
    rig.batch.slow_polls = 3
    rollout_id = await rig.start(mixed_plan())
    follows = 0

    def hook(name: str) -> None:
        nonlocal follows
        if name == "job.apply.followed":
            follows += 1
            if follows == 2:  # the job is still running
                raise Crash(name)

    with pytest.raises(BaseException) as caught:
        await rig.approve_all(rig.engine(hook), rollout_id)
    assert _is_crash(caught.value)
    (job,) = await rig.jobs()
    assert job.state == "submitted" and job.job_id is not None
    await rig.approve_all(rig.engine(), rollout_id)
    assert rig.batch.jobs[job.job_id].follows >= 4  # 3 "running" answers, then done
    assert rig.batch.submits[job.key] == 1
    await _check(db, rig, rollout_id)


async def test_a_submit_whose_answer_was_lost_is_found_on_the_retry_not_sent_again(
    db: Database,
) -> None:
    await _empty(db)
    rig = make_rig(db)
    rig.batch.lose_next_answer = True
    rollout_id = await rig.start(mixed_plan())
    engine = rig.engine()
    await rig.approve_all(engine, rollout_id)  # the step fails once, then is retried
    await rig.approve_all(engine, rollout_id)
    (first, *_) = await rig.jobs()
    assert rig.batch.calls[:2] == [("submit", first.key), ("find", first.key)]
    await _check(db, rig, rollout_id)
