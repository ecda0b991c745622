"""The real engine driving the ``intune`` backend (issue 21): dev and staging over SSH
(the recording executor), prod's Windows devices through the Windows Update for
Business deployment service, the real Graph client against the Graph emulator. The
engine assesses prod through Intune (the catalog's quality update for each device's
build), pins it, and hands each batch to one deployment; a rollout reaches succeeded,
and a device whose update fails counts against prod's failure budget. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from tests.enginekit import make_plan, plan_dict
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from tests.intunekit import UPDATE, IntuneRig, in_groups
from workflows.db import Database, read_only
from workflows.models import HostRun

PROD = {"prod-01": "10.0.22631.4460", "prod-02": "10.0.22631.4460", "prod-03": "10.0.19045.5073"}
PINNED = {"prod-01": ("KB5046633", "10.0.22631.4541"), "prod-03": ("KB5046613", "10.0.19045.5131")}


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[IntuneGraphEmulator]:
    emulator = IntuneGraphEmulator(steps=1)
    await emulator.start()
    for name, build in PROD.items():
        emulator.add_device(name, build)
    emulator.add_entry(
        "2026.11 B",
        UPDATE,
        cves=["CVE-2026-43451"],
    )
    try:
        yield emulator
    finally:
        await emulator.stop()


def _rig(db: Database, graph: IntuneGraphEmulator, journal: Path) -> IntuneRig:
    hosts = [*in_groups({"dev-01": ""}, "dev"), *in_groups({"stg-01": ""}, "staging")]
    return IntuneRig(db, graph, journal, [*hosts, *in_groups(PROD, "prod")])


def _plan(options: dict[str, Any] | None = None) -> Any:
    rings = plan_dict()["rings"]
    rings[1]["batch"] = 1
    rings[2].update(batch=2, failure_budget=1, backend="intune")
    return make_plan(rings=rings, backends={"ssh": {}, "intune": options or {}}, rollback="none")


async def _run(rig: IntuneRig, options: dict[str, Any] | None = None) -> int:
    try:
        rollout_id = await rig.start(_plan(options))
        await rig.approve_all(rig.engine(), rollout_id)
        return rollout_id
    finally:
        await rig.client.close()


async def _runs(db: Database, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(db) as session:
        runs = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in runs}


async def test_a_rollout_whose_prod_ring_is_deployed_by_intune_succeeds(
    db: Database, graph: IntuneGraphEmulator, tmp_path: Path
) -> None:
    rig = _rig(db, graph, tmp_path)
    rollout_id = await _run(rig)
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    runs = await _runs(db, rollout_id)
    for name, (kb, build) in PINNED.items():
        assert (runs[name].state, runs[name].backend) == ("healthy", "intune")
        assert runs[name].after_versions == {kb: build}  # the KB and the build it brings
        assert graph.by_name(name).build == build
    # one deployment per batch of prod (batch size 2), of the month's catalog entry
    assert len(graph.deployments) == 2
    audiences = sorted(len(graph.audiences[d.audience_id]) for d in graph.deployments.values())
    assert audiences == [1, 2]
    deployment_ids = set(graph.deployments)
    assert all((runs[n].op_id or "").endswith("-intune-apply") for n in PROD)
    assert any(d in (runs["prod-01"].output_tail or "") for d in deployment_ids)


async def test_a_device_whose_update_fails_counts_against_the_rings_budget(
    db: Database, graph: IntuneGraphEmulator, tmp_path: Path
) -> None:
    graph.by_name("prod-02").fail = "0x800f0922"
    rig = _rig(db, graph, tmp_path)
    rollout_id = await _run(rig, {"update_ring_id": graph.ring_id})
    runs = await _runs(db, rollout_id)
    assert runs["prod-02"].state == "failed"
    assert runs["prod-01"].state == runs["prod-03"].state == "healthy"
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    assert "Windows Update reports failed" in (runs["prod-02"].error or "") + (
        runs["prod-02"].output_tail or ""
    )
    assert runs["prod-02"].op_id is not None and runs["prod-02"].op_id.endswith("-intune-apply")
