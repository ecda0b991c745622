"""The real engine driving the ``tanium`` backend (issue 21): dev and staging over SSH
(the recording executor), prod through Tanium Patch deployments by the real client
against the Tanium emulator; a rollout reaches succeeded, and an endpoint whose
deployment fails counts against prod's failure budget. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa
from pydantic import SecretStr

from integrations.backends.tanium import TaniumBackend, TaniumClient
from tests.backendkit import ToolRig
from tests.enginekit import make_plan, plan_dict
from tests.fakes.tanium_api import DEPLOYMENTS, TaniumEmulator
from workflows.db import Database, read_only
from workflows.models import HostRun
from workflows.ports import InventoryHost

PROD = ("prod-01", "prod-02", "prod-03")
# The simulated hosts' pending updates, carried as Tanium UID -> title (docs/tanium.md)
MISSING = {"openssl": ("3.0.13-1", "Security Updates"), "demo-app": ("1.1", "Updates")}


@pytest_asyncio.fixture
async def tan() -> AsyncIterator[TaniumEmulator]:
    emulator = TaniumEmulator(steps=1)
    await emulator.start()
    for name in PROD:
        emulator.add_endpoint(name, platform="Linux", os_name="Ubuntu 22.04", missing=MISSING)
    try:
        yield emulator
    finally:
        await emulator.stop()


class TaniumRig(ToolRig):
    def __init__(self, db: Database, tan: TaniumEmulator, journal: Path) -> None:
        self.client = TaniumClient(tan.url, SecretStr(tan.token))
        self.tanium = TaniumBackend(self.client, journal, poll_interval=0.01)
        hosts = [
            InventoryHost(name="dev-01", groups=frozenset({"dev"})),
            InventoryHost(name="stg-01", groups=frozenset({"staging"})),
            *(InventoryHost(name=n, groups=frozenset({"prod"})) for n in PROD),
        ]
        super().__init__(db, hosts=hosts, tools={"tanium": self.tanium})


def _plan() -> Any:
    rings = plan_dict()["rings"]
    rings[1]["batch"] = 1
    rings[2].update(batch=2, failure_budget=1, backend="tanium")
    # the plan's reboot: if-required is the deployment's business (``restart: true``):
    # Tanium offers no reboot on its own, and without it the plan is refused
    return make_plan(
        rings=rings, backends={"ssh": {}, "tanium": {"restart": True}}, rollback="none"
    )


async def _run(rig: TaniumRig) -> int:
    try:
        rollout_id = await rig.start(_plan())
        await rig.approve_all(rig.engine(), rollout_id)
        return rollout_id
    finally:
        await rig.client.close()


async def test_a_rollout_whose_prod_ring_is_patched_by_tanium_succeeds(
    db: Database, tan: TaniumEmulator, tmp_path: Path
) -> None:
    rig = TaniumRig(db, tan, tmp_path)
    rollout_id = await _run(rig)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    for name in PROD:
        assert all(p.installed for p in tan.by_name(name).patches.values())
    # one Patch deployment per endpoint, naming the pinned Tanium UIDs, in two batches
    assert len([r for r in tan.requests if r == ("POST", DEPLOYMENTS)]) == 3
    assert all(d["patchTaniumUids"] == ["demo-app", "openssl"] for d in tan.deployments.values())
    assert all(d["restart"] is True for d in tan.deployments.values())
    keys = sorted(d["name"].rsplit(" ", 1)[0] for d in tan.deployments.values())
    assert len(set(keys)) == 2 and all(k.endswith("-tanium-apply") for k in keys)


async def test_a_failed_endpoint_counts_against_the_rings_budget(
    db: Database, tan: TaniumEmulator, tmp_path: Path
) -> None:
    tan.fail_endpoint("prod-02", "0x80240022")
    rig = TaniumRig(db, tan, tmp_path)
    rollout_id = await _run(rig)
    states = await rig.host_states(rollout_id)
    assert states["prod-02"] == "failed"
    assert states["prod-01"] == states["prod-03"] == "healthy"
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    async with read_only(db) as session:
        run = await session.scalar(sa.select(HostRun).where(HostRun.host_name == "prod-02"))
    assert run is not None and run.backend == "tanium"
    assert "Failed" in (run.error or "") + (run.output_tail or "")
    assert run.op_id is not None and run.op_id.endswith("-tanium-apply")


async def test_a_plan_needing_a_reboot_tanium_cannot_do_is_refused_before_any_host(
    db: Database, tan: TaniumEmulator, tmp_path: Path
) -> None:
    rig = TaniumRig(db, tan, tmp_path)
    rings = plan_dict()["rings"]
    rings[2].update(batch=2, backend="tanium")
    plan = make_plan(rings=rings, backends={"ssh": {}, "tanium": {}}, rollback="none")
    try:
        rollout_id = await rig.start(plan)
        await rig.approve_all(rig.engine(), rollout_id)
    finally:
        await rig.client.close()
    assert (await rig.rollout(rollout_id)).state == "failed"
    async with read_only(db) as session:
        run = await session.scalar(sa.select(HostRun).where(HostRun.host_name == "prod-01"))
    assert run is not None and "backend 'tanium' cannot reboot hosts" in (run.error or "")
    assert not tan.deployments
