"""End to end on real hosts: the Engine drives the SSH executor and the health checker
against lab hosts (real sshd, real apt/dpkg, a local apt repository)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.health import HealthChecker
from integrations.ssh import SshExecutor, SshOptions
from tests.enginekit import Rig, make_plan
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from workflows.db import Database
from workflows.hostkeys import DbKnownHostStore
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost

HEALTH = {
    "name": "http",
    "type": "http",
    "url": "http://{address}:8080/cgi-bin/health",
    "retries": 2,
    "interval": "1s",
    "timeout": "3s",
}


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    try:
        for i in range(3):
            host = lab.host(f"lab-{i + 1}", 11 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


def inventory_host(lab: Lab, host: LabHost, group: str = "lab", **kw: Any) -> InventoryHost:
    return InventoryHost(
        name=host.name,
        address=host.address,
        port=host.port,
        user="patchgate",
        private_key_file=str(lab.client_key),
        groups=frozenset({group}),
        **kw,
    )


def known_hosts(tmp_path: Path, hosts: list[LabHost]) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    return path


def lab_plan(*, batch: int = 2, budget: int = 0, **overrides: Any) -> PatchPlan:
    return make_plan(
        rings=[{"name": "lab", "hosts": "group:lab", "batch": batch, "failure_budget": budget}],
        packages={"include": ["demo-app"]},
        health_checks=[HEALTH],
        reboot="never",
        **overrides,
    )


class LabRig(Rig):
    def __init__(self, db: Database, lab: Lab, inventory: list[InventoryHost], kh: Path) -> None:
        super().__init__(db, hosts=inventory)
        self.executor = SshExecutor(  # type: ignore[assignment]
            SshOptions(
                known_hosts=kh,
                concurrency=10,
                command_timeout=120,
                connect_timeout=5,
                reboot_timeout=30,
            ),
            host_keys=DbKnownHostStore(db),
        )
        self.health = HealthChecker(run_argv=self.executor.run_argv, deadline=60)  # type: ignore[assignment]


def reset(
    lab: Lab, *hosts: LabHost, publish: tuple[str, ...] = ("demo-app=1.0", "demo-app=1.1")
) -> None:
    lab.publish_only(*publish)
    for host in hosts:
        host.reset()


async def run_rollout(rig: Rig, plan: PatchPlan, hook: Any = None) -> tuple[int, dict[str, str]]:
    rollout_id = await rig.start(plan)
    await asyncio.wait_for(rig.engine(hook).run_until_idle(), 300)
    return rollout_id, await rig.host_states(rollout_id)


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


def health(host: LabHost) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(host.health_url, timeout=5) as response:
            return f"{response.status} {response.read().decode().strip()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code}"
    except OSError as exc:
        return f"down: {exc}"


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


async def host_runs(rig: Rig, rollout_id: int) -> dict[str, dict[str, Any]]:
    import sqlalchemy as sa

    from workflows.db import read_only
    from workflows.models import HostRun

    async with read_only(rig.db) as session:
        rows = (
            await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        ).all()
    return {
        r.host_name: {
            "exit_code": r.exit_code,
            "output_tail": r.output_tail or "",
            "error": r.error,
        }
        for r in rows
    }


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
