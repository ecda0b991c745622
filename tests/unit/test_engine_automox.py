"""The real engine driving the ``automox`` backend (issue 20): dev and staging over SSH
(the recording executor), prod on Automox through the real client against the console
API emulator; a rollout reaches succeeded, and a failed device counts against prod's
failure budget. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.automox import AutomoxBackend, AutomoxClient
from tests.backendkit import only_failed, tool_engine
from tests.enginekit import Rig, make_plan, plan_dict
from tests.fakes.automox_api import AutomoxEmulator
from workflows.db import Database
from workflows.engine import Engine
from workflows.ports import InventoryHost

PROD = ("prod-01", "prod-02", "prod-03")


@pytest_asyncio.fixture
async def amx() -> AsyncIterator[AutomoxEmulator]:
    emulator = AutomoxEmulator(steps=1)
    await emulator.start()
    group = emulator.add_group("prod")
    for name in PROD:  # as the simulated hosts are: the same versions pending
        emulator.add_device(
            name,
            installed={"openssl": "3.0.11-1", "demo-app": "1.0", "bash": "5.2"},
            available={"openssl": "3.0.13-1", "demo-app": "1.1"},
            severity={"openssl": "critical"},
            group=group,
        )
    try:
        yield emulator
    finally:
        await emulator.stop()


class AutomoxRig(Rig):
    def __init__(self, db: Database, amx: AutomoxEmulator, journal: Path) -> None:
        hosts = [
            InventoryHost(name="dev-01", groups=frozenset({"dev"})),
            InventoryHost(name="stg-01", groups=frozenset({"staging"})),
            *(InventoryHost(name=n, groups=frozenset({"prod"})) for n in PROD),
        ]
        super().__init__(db, hosts=hosts)
        self.client = AutomoxClient(SecretStr(amx.key), amx.org, url=amx.url)
        self.automox = AutomoxBackend(self.client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None) -> Engine:
        return tool_engine(self, {"automox": self.automox}, hook)


def _plan() -> Any:
    rings = plan_dict()["rings"]
    rings[1]["batch"] = 1
    rings[2].update(batch=2, failure_budget=1, backend="automox")
    return make_plan(rings=rings, backends={"ssh": {}, "automox": {}}, rollback="none")


async def _run(rig: AutomoxRig) -> int:
    try:
        rollout_id = await rig.start(_plan())
        await rig.approve_all(rig.engine(), rollout_id)
        return rollout_id
    finally:
        await rig.client.close()


async def test_a_rollout_whose_prod_ring_is_patched_by_automox_succeeds(
    db: Database, amx: AutomoxEmulator, tmp_path: Path
) -> None:
    rig = AutomoxRig(db, amx, tmp_path)
    rollout_id = await _run(rig)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    for name in PROD:
        assert amx.by_name(name).installed["openssl"] == "3.0.13-1"
    # one InstallUpdate per device, naming the pinned packages, in two batches
    assert sorted(b["args"] for _, b in amx.posts) == ["demo-app openssl"] * 3


async def test_a_failed_device_counts_against_the_rings_budget(
    db: Database, amx: AutomoxEmulator, tmp_path: Path
) -> None:
    amx.fail_device("prod-02", "Windows Update error 0x80240022")
    rig = AutomoxRig(db, amx, tmp_path)
    rollout_id = await _run(rig)
    run = await only_failed(rig, rollout_id, "prod-02", "automox")
    assert "0x80240022" in (run.error or "") + (run.output_tail or "")
