"""Assessment through a batch backend (issue 19, item 1): hosts whose backend declares
``assess`` are assessed by the tool (facts step, pre-pin refresh, the pinned-versions
check), not over SSH; what the tool cannot assess is lost or a coverage gap with the
tool's error. Through the real engine on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests.backendkit import BackendRig, mixed_plan
from workflows import assessment
from workflows.backends import Capabilities
from workflows.db import Database, read_only
from workflows.models import Event, HostRun

TOOL_HOSTS = ("stg-02", "prod-01", "prod-02", "prod-03")


def _ssh_cannot_reach(rig: BackendRig, *names: str) -> None:
    for name in names:
        for step in ("facts", "list_upgradable", "simulate", "host_advisories"):
            rig.executor.fail(name, step, "unreachable")


async def _runs(rig: BackendRig, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(rig.db) as session:
        runs = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in runs}


async def _commands(rig: BackendRig) -> list[dict[str, object]]:
    async with read_only(rig.db) as session:
        bodies = await session.scalars(sa.select(Event.body).where(Event.kind == "host.command"))
        found = [json.loads(b) for b in bodies]
    return [d.get("data", d) for d in found]


async def test_hosts_only_the_tool_reaches_are_assessed_and_patched_through_it(
    db: Database,
) -> None:
    rig = BackendRig(db)
    _ssh_cannot_reach(rig, *TOOL_HOSTS)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    runs = await _runs(rig, rollout_id)
    for name in TOOL_HOSTS:
        assert runs[name].state == "healthy"
        assert rig.executor.installed_on(name)["openssl"] == "3.0.13-1"
    # One assess call per backend per step (facts, then the refresh), never per host.
    assert rig.batch.assess_calls == [sorted(TOOL_HOSTS), sorted(TOOL_HOSTS)]
    # No SSH assessment step was attempted on a tool-assessed host.
    ssh_steps = {"facts", "list_upgradable", "simulate", "host_advisories"}
    assert not [c for c in rig.executor.calls if c[0] in TOOL_HOSTS and c[1] in ssh_steps]
    commands = await _commands(rig)
    assert {c["host"] for c in commands if c["command"] == "batch:assess"} == set(TOOL_HOSTS)
    # The tool's advisories are in the stored assessment, as the SSH hosts' would be.
    async with read_only(db) as session:
        stored = await assessment.latest(session, hosts=["prod-01"])
    findings = {f.package: f for f in stored["prod-01"][1]}
    assert findings["openssl"].advisories == ("TOOL-openssl-3.0.13-1",)
    assert findings["openssl"].security


async def test_a_host_the_tool_reports_unreachable_is_left_out_with_the_tools_error(
    db: Database,
) -> None:
    rig = BackendRig(db)
    _ssh_cannot_reach(rig, *TOOL_HOSTS)
    rig.batch.unassessable.add("prod-02")
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(rig, rollout_id)
    assert runs["prod-02"].state == "unreachable"  # lost before any change
    assert runs["prod-02"].error == "batch: agent disconnected"
    assert "openssl" not in rig.executor.installed_on("prod-02") or (
        rig.executor.installed_on("prod-02")["openssl"] != "3.0.13-1"
    )
    assert runs["prod-01"].state == "healthy"
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"


async def test_a_tool_that_reports_no_facts_still_pins_the_assessed_versions(
    db: Database,
) -> None:
    rig = BackendRig(db)
    rig.batch.reports_facts = False
    _ssh_cannot_reach(rig, *TOOL_HOSTS)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(rig, rollout_id)
    assert {runs[n].platform for n in TOOL_HOSTS} == {"batch-managed"}
    assert runs["prod-03"].state == "healthy"
    assert rig.executor.installed_on("prod-03")["openssl"] == "3.0.13-1"


async def test_a_batch_backend_without_assess_is_assessed_over_ssh_as_before(
    db: Database,
) -> None:
    rig = BackendRig(db)
    rig.batch.capabilities_ = Capabilities(rollback=True, reboot=True, health=True)
    _ssh_cannot_reach(rig, "prod-01")
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(rig, rollout_id)
    assert rig.batch.assess_calls == []
    assert runs["prod-01"].state == "unreachable"
    assert "connection refused (facts)" in (runs["prod-01"].error or "")
    assert runs["prod-02"].state == "healthy"


async def test_a_host_the_tool_cannot_refresh_is_a_coverage_gap_naming_the_tools_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = BackendRig(db)
    original = rig.batch.assess

    async def refresh_fails_on_prod_02(hosts: Any, options: Any) -> Any:
        if rig.batch.assess_calls:  # the facts step's call went through
            rig.batch.unassessable.add("prod-02")
        return await original(hosts, options)

    monkeypatch.setattr(rig.batch, "assess", refresh_fails_on_prod_02)
    rollout_id = await rig.start(mixed_plan())
    await rig.engine().run_until_idle()
    async with read_only(db) as session:
        bodies = await session.scalars(
            sa.select(Event.body).where(Event.kind == "rollout.assessments_refreshed")
        )
        refreshed = [json.loads(b) for b in bodies]
    data = refreshed[-1].get("data", refreshed[-1])
    assert data["coverage_gaps"] == {"prod-02": "batch: agent disconnected"}
    assert "prod-02" not in data["refreshed"] and "prod-01" in data["refreshed"]
    rollout = await rig.rollout(rollout_id)
    # Never assessed before, so no fresh assessment: the pin is refused, naming why.
    assert rollout.state == "failed"
    assert "prod-02" in (rollout.reason or "") and "agent disconnected" in (rollout.reason or "")


async def test_the_check_before_a_ring_asks_ssh_hosts_only_never_a_tool_assessed_one(
    db: Database,
) -> None:
    # Every host answers SSH here: staging mixes stg-01 (ssh) and stg-02 (the tool);
    # prod is the tool's. Only stg-01 is preflighted before its ring (one per platform).
    rig = BackendRig(db)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    preflighted = {c[0] for c in rig.executor.calls if c[1] == "preflight"}
    assert "stg-01" in preflighted
    assert not preflighted & set(TOOL_HOSTS), preflighted
