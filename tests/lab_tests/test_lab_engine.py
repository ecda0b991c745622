"""End to end on real hosts: the Engine drives the SSH executor and the health checker
against lab hosts (real sshd, real apt/dpkg, a local apt repository)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import kit
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.kit import (
    LabRig,
    health,
    host_runs,
    inventory_host,
    known_hosts,
    lab_plan,
    run_rollout,
    started,
)
from workflows.db import Database


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    with started(lab.host, [(f"lab-{i + 1}", 11 + i) for i in range(3)]) as booted:
        yield booted


def reset(
    lab: Lab, *hosts: LabHost, publish: tuple[str, ...] = ("demo-app=1.0", "demo-app=1.1")
) -> None:
    kit.reset(lab, *hosts, publish=publish)


async def test_a_ring_upgrades_its_hosts_and_leaves_the_others_untouched(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    a, b, other = hosts
    reset(lab, a, b, other)
    inventory = [inventory_host(lab, a), inventory_host(lab, b), inventory_host(lab, other, "prod")]
    rig = LabRig(db, lab, inventory, known_hosts(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-1": "healthy", "lab-2": "healthy"}
    assert (a.installed("demo-app"), b.installed("demo-app")) == ("1.1", "1.1")
    assert other.installed("demo-app") == "1.0"
    assert other.dpkg_installs("demo-app", "1.1") == 0
    assert (await rig.rollout(rollout_id)).state == "succeeded"


class Crash(BaseException):
    """The process dies here (not an error the engine may handle)."""


def install(host: LabHost, version: str) -> None:
    host.sh(
        "apt-get update -qq -o APT::Update::Error-Mode=any && "
        f"apt-get install -y -qq --allow-downgrades demo-app={version} >/dev/null",
        timeout=120,
    )


async def test_b_a_version_failing_its_health_check_is_rolled_back_to_the_healthy_one(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(lab, host)
    install(host, "1.1")
    lab.publish_only("demo-app=1.0", "demo-app=1.1", "demo-app=1.2")
    rig = LabRig(db, lab, [inventory_host(lab, host)], known_hosts(tmp_path, hosts))

    _, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-1": "rolled_back"}
    assert host.installed("demo-app") == "1.1"
    assert host.dpkg_installs("demo-app", "1.2") == 1
    assert health(host).startswith("200 demo-app 1.1")


@pytest.mark.slow
async def test_c_rollback_uses_the_secured_package_when_the_repository_dropped_it(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(lab, host)
    install(host, "1.1")
    host.sh("apt-get clean")  # nothing left in apt's cache: only the secured copy remains
    lab.publish_only("demo-app=1.0", "demo-app=1.1", "demo-app=1.2")
    rig = LabRig(db, lab, [inventory_host(lab, host)], known_hosts(tmp_path, hosts))

    def hook(step: str) -> None:
        if step == "host.apply.intent":  # after preflight secured 1.1, before the apply
            lab.publish_only("demo-app=1.0", "demo-app=1.2")

    rollout_id, states = await run_rollout(rig, lab_plan(), hook)

    assert states == {"lab-1": "rolled_back"}, await host_runs(rig, rollout_id)
    assert host.installed("demo-app") == "1.1"
    assert "demo-app_1.1_all.deb" not in lab.repo.root.joinpath("Packages").read_text()
    assert health(host).startswith("200 demo-app 1.1")


async def test_d_a_failing_postinst_fails_the_host_and_it_is_rolled_back_configured(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(lab, host)
    install(host, "1.1")
    lab.publish_only("demo-app=1.0", "demo-app=1.1", "demo-app=1.3")
    rig = LabRig(db, lab, [inventory_host(lab, host)], known_hosts(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-1": "rolled_back"}
    runs = await host_runs(rig, rollout_id)
    assert runs["lab-1"]["exit_code"] == 100
    assert "configuration failed" in runs["lab-1"]["output_tail"]
    assert host.installed("demo-app") == "1.1"
    assert host.sh("dpkg --audit").strip() == ""
    assert health(host).startswith("200 demo-app 1.1")


@pytest.mark.slow
async def test_e_a_host_with_sshd_stopped_is_unreachable_and_the_budget_absorbs_it(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    up, down = hosts[0], hosts[1]
    reset(lab, up, down)
    down.stop_sshd()
    inventory = [inventory_host(lab, up), inventory_host(lab, down)]
    rig = LabRig(db, lab, inventory, known_hosts(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan(budget=1))

    assert states == {"lab-1": "healthy", "lab-2": "unreachable"}
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    assert down.installed("demo-app") == "1.0"


async def test_e_with_no_budget_an_unreachable_host_fails_the_ring(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    down = hosts[1]
    reset(lab, down)
    down.stop_sshd()
    rig = LabRig(db, lab, [inventory_host(lab, down)], known_hosts(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan(budget=0))

    assert states == {"lab-2": "unreachable"}
    assert (await rig.rollout(rollout_id)).state != "succeeded"


async def test_i_an_engine_stopped_mid_apply_is_finished_by_a_new_one_without_installing_twice(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    a, b = hosts[0], hosts[1]
    reset(lab, a, b)
    inventory = [inventory_host(lab, a), inventory_host(lab, b)]
    rig = LabRig(db, lab, inventory, known_hosts(tmp_path, hosts))
    rollout_id = await rig.start(lab_plan(batch=1))
    crashes = iter(["host.apply.returned", "host.apply.intent"])
    target = next(crashes)

    def hook(step: str) -> None:
        if step == target:
            raise Crash(step)

    for _ in range(2):
        with pytest.raises(BaseException) as caught:
            await asyncio.wait_for(rig.engine(hook).run_until_idle(), 300)
        assert isinstance(caught.value, Crash) or (
            isinstance(caught.value, BaseExceptionGroup) and caught.value.subgroup(Crash)
        ), caught.value
        target = next(crashes, "none")
    await asyncio.wait_for(rig.engine().run_until_idle(), 300)

    assert await rig.host_states(rollout_id) == {"lab-1": "healthy", "lab-2": "healthy"}
    assert a.dpkg_installs("demo-app", "1.1") == 1
    assert b.dpkg_installs("demo-app", "1.1") == 1
