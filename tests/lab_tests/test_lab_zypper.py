"""zypper hosts in the lab: real rpm 4.18 and zypper 1.14/libzypp 17.22 (Debian's builds)
managing the demo packages in an rpm database, against an rpm-md repository with
updateinfo.xml served over HTTP, driven through the real SSH executor and the real engine
(tests/lab/rpm_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import kit
from tests.lab.kit import (
    RPM_APP,
    LabRig,
    executor,
    health,
    host_runs,
    inventory_host,
    lab_plan,
    run_rollout,
    started,
)
from tests.lab.kit import known_hosts as trusted
from tests.lab.rpm_fixtures import RpmLab, zypper_lab
from tests.lab.rpm_hosts import RpmLabHost
from tests.security.test_injection_lab_rpm import hostile_values_on_a_real_host
from workflows.db import Database

__all__ = ["zypper_lab"]

APP = RPM_APP


@pytest.fixture(scope="module")
def hosts(zypper_lab: RpmLab) -> Iterator[list[RpmLabHost]]:
    with started(zypper_lab.host, [(f"lab-zy-{i + 1}", 91 + i) for i in range(2)]) as booted:
        yield booted


def reset(lab: RpmLab, *hosts: RpmLabHost, publish: tuple[str, ...] = APP) -> None:
    kit.reset(lab, *hosts, publish=publish)


def install(host: RpmLabHost, version: str) -> None:
    host.sh(
        f"zypper -n -q refresh && zypper -n -q install --oldpackage demo-app={version}-1",
        timeout=120,
    )


def patchgate_installs(host: RpmLabHost) -> list[str]:
    """libzypp's history of demo-app after the template's and the test's own 1.0 and 1.1."""
    return host.zypp_history("demo-app")[1:]


async def test_a_a_zypper_host_is_assessed_with_its_security_advisory_and_cves(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    reset(zypper_lab, host)
    facts, upgradable, advisories = await kit.assessed(zypper_lab, host, trusted(tmp_path, hosts))

    assert (facts.package_manager, facts.os_id) == ("zypper", "opensuse-leap")
    assert [(p.name, p.current, p.candidate, p.security) for p in upgradable] == [
        ("demo-app", "1.0-1", "1.1-1", True)
    ]
    assert [(a.id, dict(a.packages), a.severity, sorted(a.cves)) for a in advisories] == [
        ("LAB-2026:0001", {"demo-app": "1.1-1"}, "high", ["CVE-2026-10001", "CVE-2026-10002"])
    ]


async def test_b_a_ring_upgrades_a_zypper_host_to_the_pinned_version(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    a, other = hosts
    reset(zypper_lab, a, other)
    inventory = [inventory_host(zypper_lab, a), inventory_host(zypper_lab, other, "prod")]
    rig = LabRig(db, zypper_lab, inventory, trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-zy-1": "healthy"}, await host_runs(rig, rollout_id)
    assert a.installed("demo-app") == "1.1-1"
    assert a.zypp_history("demo-app") == ["install 1.1-1"]
    assert other.installed("demo-app") == "1.0-1"
    assert health(a).startswith("200 demo-app 1.1")


async def test_c_a_version_failing_its_health_check_is_rolled_back_in_the_rpm_database(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(zypper_lab, host)
    install(host, "1.1")
    zypper_lab.publish_only(*APP, "demo-app=1.2")
    rig = LabRig(db, zypper_lab, [inventory_host(zypper_lab, host)], trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-zy-1": "rolled_back"}, await host_runs(rig, rollout_id)
    assert host.installed("demo-app") == "1.1-1"
    assert patchgate_installs(host) == ["install 1.2-1", "install 1.1-1"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_d_a_failing_post_scriptlet_fails_the_host_and_it_is_rolled_back(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(zypper_lab, host)
    install(host, "1.1")
    zypper_lab.publish_only(*APP, "demo-app=1.3")
    rig = LabRig(db, zypper_lab, [inventory_host(zypper_lab, host)], trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    runs = await host_runs(rig, rollout_id)
    assert states == {"lab-zy-1": "rolled_back"}, runs
    assert runs["lab-zy-1"]["exit_code"] == 107  # zypper: ZYPPER_EXIT_INF_RPM_SCRIPT_FAILED
    assert "configuration failed" in runs["lab-zy-1"]["output_tail"]
    assert host.installed("demo-app") == "1.1-1"
    assert patchgate_installs(host) == ["install 1.3-1", "install 1.1-1"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_f_rollback_uses_the_secured_rpm_when_the_repository_dropped_it(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(zypper_lab, host)
    install(host, "1.1")
    host.sh("zypper -n -q clean --all >/dev/null")  # only the secured copy will remain
    zypper_lab.publish_only(*APP, "demo-app=1.2")
    rig = LabRig(db, zypper_lab, [inventory_host(zypper_lab, host)], trusted(tmp_path, hosts))

    def hook(step: str) -> None:
        if step == "host.apply.intent":  # after preflight secured 1.1, before the apply
            zypper_lab.publish_only("lab-base=1.0", "demo-app=1.0", "demo-app=1.2")

    rollout_id, states = await run_rollout(rig, lab_plan(), hook)

    assert states == {"lab-zy-1": "rolled_back"}, await host_runs(rig, rollout_id)
    assert "demo-app-1.1-1" not in (zypper_lab.repo.root / "repodata").joinpath(
        "primary.xml.gz").read_bytes().decode("latin-1")  # fmt: skip
    assert host.installed("demo-app") == "1.1-1"
    assert patchgate_installs(host) == ["install 1.2-1", "install 1.1-1"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_e_a_demo_kernel_update_needs_a_reboot_as_zypper_needs_rebooting_says(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(zypper_lab, host, publish=(*APP, "demo-kernel=1.1"))
    host.sh("zypper -n -q refresh")
    ex = executor(trusted(tmp_path, hosts))
    inv = inventory_host(zypper_lab, host)
    try:
        assert not (await ex.facts(inv)).reboot_required
        result = await ex.apply(inv, {"demo-kernel": "1.1-1"}, op_id="op-e")
        assert result.ok and result.reboot_required
        before = (await ex.facts(inv)).boot_id
        assert await ex.reboot(inv) != before
    finally:
        ex.close()
    assert host.installed("demo-kernel") == "1.1-1"
    # The lab's in-place reboot keeps the host's uptime (its time namespace), which
    # needs-restarting reads: only a cold restart makes the update older than the boot.
    host.restart()
    ex = executor(trusted(tmp_path, hosts))
    try:
        assert not (await ex.facts(inv)).reboot_required
    finally:
        ex.close()


async def test_g_preflight_refuses_a_pin_the_repository_no_longer_offers(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(zypper_lab, host, publish=("lab-base=1.0", "demo-app=1.1", "demo-kernel=1.0"))
    ex = executor(trusted(tmp_path, hosts))
    inv = inventory_host(zypper_lab, host)
    try:
        gone = await ex.preflight(inv, {"demo-app": "1.2-1"})
        offered = await ex.preflight(inv, {"demo-app": "1.1-1"})
        installed = await ex.preflight(inv, {"demo-app": "1.0-1"})  # dropped, but installed
    finally:
        ex.close()
    assert (gone.ok, gone.unavailable) == (False, ["demo-app=1.2-1"])
    assert (offered.ok, offered.unavailable) == (True, [])
    assert installed.unavailable == []
    assert host.installed("demo-app") == "1.0-1"  # a preflight changes nothing


async def test_i_hostile_names_and_versions_are_refused_and_a_pin_runs_whole_on_the_real_zypper(
    zypper_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    # What the stand-in injection suite showed for zypper until issue 18, on the real tool.
    zypper_lab.publish_only(*APP)
    await hostile_values_on_a_real_host(zypper_lab, hosts[1], trusted(tmp_path, hosts), "zypper")
    assert hosts[1].installed("demo-app") == "1.0-1"
