"""A zone worker on real hosts: the engine (leader) drives one lab host itself and one
through a `patchgate worker` process with its own SSH settings over Redis; that worker
is SIGKILLed after the apply, before its result is sent, and a second worker of the zone
answers the re-sent call from the op status on the host: dpkg installed the version
once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.health import HealthChecker
from integrations.zones.client import ZoneClient, ZoneOptions
from integrations.zones.router import ZoneHealthChecker, ZoneRouter
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab_tests.test_lab_engine import (
    LabRig,
    inventory_host,
    known_hosts,
    lab_plan,
    reset,
)
from tests.zonekit import FAST, fleet, redis_broker
from workflows.db import Database


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    try:
        for i in range(2):
            host = lab.host(f"zone-{i + 1}", 41 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


async def test_a_worker_killed_after_a_real_apply_leaves_the_package_installed_once(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    near, far = hosts
    reset(lab, near, far)
    kh = known_hosts(tmp_path, hosts)
    inventory = [
        inventory_host(lab, near),
        inventory_host(lab, far, vars={"patchgate_zone": "far"}),
    ]
    rig = LabRig(db, lab, inventory, kh)
    with redis_broker(15) as url, fleet(url, tmp_path / "zone") as workers:
        (tmp_path / "zone").mkdir(exist_ok=True)
        ssh_env = {
            "PATCHGATE_EXECUTOR": "ssh",
            "PATCHGATE_SSH_KNOWN_HOSTS": str(kh),
            "PATCHGATE_SSH_CONFIG": "none",
        }
        doomed = workers.start(
            "far", slots=2, PATCHGATE_TEST_WORKER_PAUSE="after_apply:300", **ssh_env
        )
        router = ZoneRouter(
            rig.executor, calls=lambda: ZoneClient(ZoneOptions(broker_url=url, **FAST))
        )
        health = rig.health
        assert isinstance(health, HealthChecker)
        rig.executor = router  # type: ignore[assignment]
        rig.health = ZoneHealthChecker(health, router)  # type: ignore[assignment]
        try:
            rollout_id = await rig.start(lab_plan())
            run = asyncio.create_task(rig.engine().run_until_idle())
            line = await asyncio.to_thread(workers.wait_for_step, "worker.after_apply", 240)
            assert line.split()[1] == "zone-2"
            doomed.kill()
            assert far.installed("demo-app") == "1.1"  # the host was patched; no answer came
            workers.start("far", **ssh_env)
            await asyncio.wait_for(run, 300)
            states = await rig.host_states(rollout_id)
        finally:
            router.close_zones()
    assert states == {"zone-1": "healthy", "zone-2": "healthy"}
    assert (near.installed("demo-app"), far.installed("demo-app")) == ("1.1", "1.1")
    assert far.dpkg_installs("demo-app", "1.1") == 1
    assert (await rig.rollout(rollout_id)).state == "succeeded"
