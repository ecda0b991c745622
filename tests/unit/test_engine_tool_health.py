"""The tool's own host status as a health check, halting a tool's running job, and
on-call for hosts a tool that cannot roll back left failed (issue 20), through the real
engine with the recording batch backend. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tests.backendkit import BackendRig
from tests.enginekit import APPROVER_1, make_plan
from workflows.backends import HOST_BACKEND_VAR, Capabilities, DeviceStatus
from workflows.db import Database, read_only, unit_of_work
from workflows.models import BackendJob, Decision, Event, HostRun, OutboxItem, Request
from workflows.plans import Approvers, GateSpec, PatchPlan
from workflows.ports import InventoryHost

AGENT = {"name": "agent", "type": "tool", "retries": 2, "interval": "0s"}
HTTP = {"name": "http", "type": "http", "url": "http://{address}/health"}


def hosts(ssh: str | None = None) -> list[InventoryHost]:
    return [
        InventoryHost(
            name=f"prod-0{i}",
            groups=frozenset({"prod"}),
            vars={HOST_BACKEND_VAR: "ssh"} if f"prod-0{i}" == ssh else {},
        )
        for i in (1, 2, 3)
    ]


def plan(*, budget: int = 3, checks: list[dict[str, Any]] | None = None, **kw: Any) -> PatchPlan:
    ring = {
        "name": "prod",
        "hosts": "group:prod",
        "batch": 3,
        "failure_budget": budget,
        "backend": "batch",
        "health_checks": [HTTP, AGENT] if checks is None else checks,
    }
    return make_plan(rings=[ring], backends={"ssh": {}, "batch": {}}, **kw)


def rig_with(db: Database, caps: Capabilities, *, ssh: str | None = None) -> BackendRig:
    rig = BackendRig(db, hosts=hosts(ssh))
    rig.batch.capabilities_ = caps
    return rig


async def runs_of(rig: BackendRig, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(rig.db) as session:
        found = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in found}


async def events(rig: BackendRig, kind: str) -> list[dict[str, Any]]:
    async with read_only(rig.db) as session:
        bodies = await session.scalars(sa.select(Event.body).where(Event.kind == kind))
        return [json.loads(b)["data"] for b in bodies]


WATCHED = Capabilities(rollback=True, reboot=True, health=True, status=True)


async def test_the_tool_is_asked_once_per_batch_and_again_for_hosts_not_yet_well(
    db: Database,
) -> None:
    rig = rig_with(db, WATCHED, ssh="prod-03")
    rig.batch.statuses = {
        "prod-01": ["disconnected"],  # the agent reconnects after one more ask
        "prod-02": ["disconnected"] * 5,  # never within the retries
    }
    rollout_id = await rig.start(plan())
    await rig.engine().run_until_idle()

    runs = await runs_of(rig, rollout_id)
    # One ask for the batch's hosts on the tool, then only those not yet well.
    assert rig.batch.status_calls == [["prod-01", "prod-02"], ["prod-01", "prod-02"], ["prod-02"]]
    assert runs["prod-01"].state == "healthy"
    assert runs["prod-01"].health == [
        {"name": "http", "ok": True, "detail": "ok"},
        {"name": "agent", "ok": True, "detail": "batch: connected"},
    ]
    assert runs["prod-02"].state in ("unhealthy", "rolled_back")
    assert runs["prod-02"].error is not None and runs["prod-02"].error.startswith(
        "health check failed: agent: batch: disconnected: prod-02 is disconnected"
    )
    # A host whose own backend reports no status: the check is not applicable, passed.
    assert runs["prod-03"].backend == "ssh" and runs["prod-03"].state == "healthy"
    assert {"name": "agent", "ok": True, "detail": (
        "not applicable: backend 'ssh' reports no host status of its own"
    )} in runs["prod-03"].health  # fmt: skip


async def test_a_tool_error_or_an_answer_of_another_shape_fails_the_check_not_the_engine(
    db: Database,
) -> None:
    rig = rig_with(db, WATCHED)
    rig.batch.status_error = RuntimeError("status API answered 500")
    rollout_id = await rig.start(plan(checks=[{**AGENT, "retries": 0}]))
    await rig.engine().run_until_idle()
    runs = await runs_of(rig, rollout_id)
    assert {r.state for r in runs.values()} <= {"unhealthy", "rolled_back"}
    assert "could not report host status: RuntimeError: status API answered 500" in (
        runs["prod-01"].error or ""
    )

    other = rig_with(db, WATCHED)
    other.batch.status_answer = [{"host": "prod-01", "ok": True}, "garbage"]
    second = await other.start(plan(checks=[{**AGENT, "retries": 0}]))
    await other.engine().run_until_idle()
    runs = await runs_of(other, second)
    assert "reported no status for this host (2 answer(s) of an unknown shape)" in (
        runs["prod-01"].error or ""
    )


async def test_a_backend_running_no_checks_of_its_own_is_judged_by_the_tool_alone(
    db: Database,
) -> None:
    rig = rig_with(db, Capabilities(rollback=True, reboot=True, health=False, status=True))
    rig.batch.statuses = {"prod-02": [DeviceStatus("prod-02", False, "needs reboot")] * 3}
    rollout_id = await rig.start(plan(checks=[AGENT]))
    await rig.engine().run_until_idle()
    runs = await runs_of(rig, rollout_id)
    assert runs["prod-01"].state == "healthy" and rig.health.checked == []
    assert runs["prod-02"].error == "health check failed: agent: batch: needs reboot"
    (health, *_) = [e for e in await events(rig, "host.health") if e["host"] == "prod-01"]
    assert health["note"] == "backend batch runs no PatchGate health checks"


BLIND_TOOL = Capabilities(rollback=False, reboot=True, health=True, halt=True)


async def test_a_spent_budget_halts_the_tools_job_still_running_and_audits_it(
    db: Database,
) -> None:
    rig = rig_with(db, BLIND_TOOL, ssh="prod-03")
    rig.batch.slow_polls = 10**6  # the tool's job runs until halted
    rig.executor.fail("prod-03", "apply")  # the SSH host of the same batch fails at once
    rollout_id = await rig.start(plan(budget=0, checks=[], rollback="none"))
    await rig.engine().run_until_idle()

    assert (await rig.rollout(rollout_id)).state == "failed"
    (job_id, reason), *again = rig.batch.halts
    assert not again  # once, however often the job was followed after
    assert reason == "failure budget exceeded in ring prod: 1 failed, budget 0"
    (halt,) = await events(rig, "backend.job.halt")
    assert (halt["job_id"], halt["halted"], halt["reason"]) == (job_id, True, reason)
    assert halt["key"].endswith("-batch-apply") and halt["backend"] == "batch"
    runs = await runs_of(rig, rollout_id)
    assert runs["prod-01"].state == "failed" and "halted" in (runs["prod-01"].error or "")


async def test_an_abort_halts_the_job_and_a_failing_halt_is_audited_without_blocking_it(
    db: Database,
) -> None:
    rig = rig_with(db, BLIND_TOOL)
    rig.batch.slow_polls = 3
    rig.batch.halt_error = ConnectionError("tool unreachable")
    rollout_id = await rig.start(plan(checks=[], rollback="none"))
    follow = rig.batch.follow

    async def abort_while_running(job: Any, options: Any, *, wait: float) -> Any:
        if not rig.batch.halts and rig.batch.jobs[job.job_id].follows == 0:
            async with unit_of_work(db) as session:  # asked for while the job runs
                session.add(Request(rollout_id=rollout_id, kind="abort", requested_by="U0ONCALL"))
        return await follow(job, options, wait=wait)

    rig.batch.follow = abort_while_running  # type: ignore[method-assign]
    await rig.engine().run_until_idle()
    assert (await rig.rollout(rollout_id)).state == "aborted"
    halts = await events(rig, "backend.job.halt")
    assert halts and halts[0]["halted"] is False
    assert halts[0]["error"] == "ConnectionError: tool unreachable"
    assert halts[0]["reason"] == "aborted by U0ONCALL"


async def test_hosts_a_tool_that_cannot_roll_back_left_failed_page_on_call_once_per_batch(
    db: Database,
) -> None:
    rig = rig_with(db, BLIND_TOOL)
    rig.batch.fail("prod-01", "failed")
    rig.batch.fail("prod-02", "failed")
    rollout_id = await rig.start(plan(checks=[], rollback="none"))
    await rig.engine().run_until_idle()

    async with read_only(db) as session:
        alerts = list(
            await session.scalars(sa.select(OutboxItem).where(OutboxItem.key.like("%:broken")))
        )
    (alert,) = alerts
    (job,) = [j for j in await rig.jobs() if j.action == "apply"]
    assert alert.key == f"rollout:{rollout_id}:alert:ring:0:batch:0:batch:broken"
    assert alert.payload["type"] == "rollout.alert"
    assert alert.payload["hosts"] == ["prod-01", "prod-02"]
    text = alert.payload["text"]
    assert "2 host(s) failed on batch, which cannot roll back" in text
    assert f"batch job {job.job_id} ({job.key})" in text
    assert "prod-01 (failed in task 'Install the pinned packages'" in text


async def test_a_rejected_gate_halts_a_job_left_running_before_a_crash(db: Database) -> None:
    """A job still running when a rollout stops at a gate (only after a crash left it
    running in the tool): halted with the gate's reason, audited with its id."""
    rig = rig_with(db, BLIND_TOOL)
    gated = plan(checks=[], rollback="none")
    ring = gated.rings[0].model_copy(
        update={"gate": GateSpec(type="approval", approvers=Approvers(users=[APPROVER_1]))}
    )
    rollout_id = await rig.start(gated.model_copy(update={"rings": [ring]}))
    await rig.engine().run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    async with unit_of_work(db) as session:  # as a crash of an earlier rollout step left it
        session.add(
            BackendJob(
                rollout_id=rollout_id,
                ring_id=gate.ring_id,
                batch=0,
                backend="batch",
                action="apply",
                key=f"pg-{rollout_id}-r0-b0-batch-apply",
                job_id="job-left-running",
                state="submitted",
                hosts=["prod-01"],
            )
        )
    await rig.vote(gate, APPROVER_1, Decision.REJECT, reason="not this week")
    await rig.engine().run_until_idle()

    assert (await rig.rollout(rollout_id)).state == "rejected"
    ((job_id, reason),) = rig.batch.halts
    assert job_id == "job-left-running" and reason == "gate for ring prod rejected: not this week"
    (halt,) = await events(rig, "backend.job.halt")
    assert (halt["job_id"], halt["halted"], halt["reason"]) == (job_id, True, reason)
