"""The real engine driving the ``ninjaone`` backend (issue 21): dev and staging over SSH
(the recording executor), prod's Windows servers on NinjaOne through the real client
against the public API v2 emulator; the prod share of the patch set is the devices'
approved KBs, a rollout reaches succeeded, and a device whose install fails counts
against prod's failure budget. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.ninjaone import NinjaOneBackend, NinjaOneClient
from tests.backendkit import only_failed, tool_engine
from tests.enginekit import Rig, make_plan, plan_dict
from tests.fakes.ninjaone_api import FakePatch, NinjaOneEmulator
from workflows.db import Database, read_only
from workflows.engine import Engine
from workflows.models import Rollout
from workflows.ports import InventoryHost

PROD = ("prod-01", "prod-02", "prod-03")
KBS = {"KB5034439", "KB5034612"}


@pytest_asyncio.fixture
async def ninja() -> AsyncIterator[NinjaOneEmulator]:
    emulator = NinjaOneEmulator(steps=1)
    await emulator.start()
    org = emulator.add_org("Acme Corp")
    for name in PROD:
        emulator.add_device(
            name,
            org,
            patches=[
                FakePatch("KB5034439", "2024-01 Cumulative Update", severity="CRITICAL"),
                FakePatch("KB5034612", ".NET Framework update", severity="MODERATE"),
                FakePatch("KB5034000", "Preview", type="UPDATE_ROLLUPS", status="MANUAL"),
            ],
        )
    try:
        yield emulator
    finally:
        await emulator.stop()


class NinjaRig(Rig):
    def __init__(self, db: Database, ninja: NinjaOneEmulator, journal: Path) -> None:
        hosts = [
            InventoryHost(name="dev-01", groups=frozenset({"dev"})),
            InventoryHost(name="stg-01", groups=frozenset({"staging"})),
            *(InventoryHost(name=n, groups=frozenset({"prod"})) for n in PROD),
        ]
        super().__init__(db, hosts=hosts)
        self.client = NinjaOneClient(ninja.url, ninja.client_id, SecretStr(ninja.secret))
        self.ninjaone = NinjaOneBackend(self.client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None) -> Engine:
        return tool_engine(self, {"ninjaone": self.ninjaone}, hook)


def _plan() -> Any:
    rings = plan_dict()["rings"]
    rings[1]["batch"] = 1
    rings[2].update(batch=2, failure_budget=1, backend="ninjaone")
    return make_plan(
        rings=rings, backends={"ssh": {}, "ninjaone": {"reboots_by_policy": True}}, rollback="none"
    )


async def _run(rig: NinjaRig) -> int:
    try:
        rollout_id = await rig.start(_plan())
        await rig.approve_all(rig.engine(), rollout_id)
        return rollout_id
    finally:
        await rig.client.close()


async def test_a_rollout_whose_prod_ring_is_patched_by_ninjaone_succeeds(
    db: Database, ninja: NinjaOneEmulator, tmp_path: Path
) -> None:
    rig = NinjaRig(db, ninja, tmp_path)
    rollout_id = await _run(rig)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    for name in PROD:
        assert ninja.installed(name) == KBS  # the approved KBs, not the one awaiting approval
    applies = [d for kind, d in ninja.posts if kind == "apply"]
    assert sorted(applies) == sorted(ninja.by_name(n).id for n in PROD)  # one per device
    async with read_only(db) as session:
        rollout = await session.get(Rollout, rollout_id)
    assert rollout is not None
    # pinned per Windows release (the devices' facts), each KB with its identity
    assert rollout.patchset["windows-21H2-x64"] == {k: k for k in sorted(KBS)}
    updates = (rollout.patchset_updates or {})["windows-21H2-x64"]
    assert {k: (u["kb"], u["classification"]) for k, u in updates.items()} == {
        k: (k, "security") for k in KBS
    }


async def test_a_failed_device_counts_against_the_rings_budget(
    db: Database, ninja: NinjaOneEmulator, tmp_path: Path
) -> None:
    ninja.fail_device("prod-02", "Windows Update error 0x80240022")
    rig = NinjaRig(db, ninja, tmp_path)
    rollout_id = await _run(rig)
    run = await only_failed(rig, rollout_id, "prod-02", "ninjaone")
    assert "0x80240022" in (run.error or "") + (run.output_tail or "")
