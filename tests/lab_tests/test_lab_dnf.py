"""dnf hosts in the lab: real rpm 4.18 and dnf 4.14 (Debian's builds) managing the demo
packages in an rpm database, against an rpm-md repository with updateinfo.xml served over
HTTP, driven through the real SSH executor and the real engine (tests/lab/rpm_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.packages.dnf import DnfDriver
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
from tests.lab.rpm_fixtures import RpmLab, dnf_lab
from tests.lab.rpm_hosts import RpmLabHost
from tests.security.test_injection_lab_rpm import hostile_values_on_a_real_host
from workflows.db import Database

__all__ = ["dnf_lab"]

APP = RPM_APP


@pytest.fixture(scope="module")
def hosts(dnf_lab: RpmLab) -> Iterator[list[RpmLabHost]]:
    with started(dnf_lab.host, [(f"lab-dnf-{i + 1}", 81 + i) for i in range(2)]) as booted:
        yield booted


def reset(lab: RpmLab, *hosts: RpmLabHost, publish: tuple[str, ...] = APP) -> None:
    kit.reset(lab, *hosts, publish=publish)


def install(host: RpmLabHost, version: str) -> None:
    host.sh(f"dnf -y -q install demo-app-{version}-1 >/dev/null", timeout=120)


def patchgate_transactions(host: RpmLabHost) -> list[str]:
    """dnf's history after the template's (1) and the test's own install of 1.1 (2)."""
    return [command for tid, command in host.dnf_transactions() if tid > 2]


async def test_a_a_dnf_host_is_assessed_with_its_security_advisory_and_cves(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    reset(dnf_lab, host)
    facts, upgradable, advisories = await kit.assessed(dnf_lab, host, trusted(tmp_path, hosts))

    assert (facts.package_manager, facts.os_id) == ("dnf", "rhel")
    assert [(p.name, p.current, p.candidate, p.security) for p in upgradable] == [
        ("demo-app", "1.0-1", "1.1-1", True)
    ]
    assert [(a.id, dict(a.packages), a.severity, sorted(a.cves)) for a in advisories] == [
        ("LAB-2026:0001", {"demo-app": "1.1-1"}, "high", ["CVE-2026-10001", "CVE-2026-10002"])
    ]


async def test_b_a_ring_upgrades_a_dnf_host_to_the_pinned_version(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    a, other = hosts
    reset(dnf_lab, a, other)
    inventory = [inventory_host(dnf_lab, a), inventory_host(dnf_lab, other, "prod")]
    rig = LabRig(db, dnf_lab, inventory, trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-dnf-1": "healthy"}, await host_runs(rig, rollout_id)
    assert a.installed("demo-app") == "1.1-1"
    assert a.dnf_history("demo-app") == [
        "Install demo-app-1.0-1.noarch",
        "Upgrade demo-app-1.1-1.noarch",
    ]
    assert other.installed("demo-app") == "1.0-1"
    assert health(a).startswith("200 demo-app 1.1")


async def test_c_a_version_failing_its_health_check_is_rolled_back_in_the_rpm_database(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(dnf_lab, host)
    install(host, "1.1")
    dnf_lab.publish_only(*APP, "demo-app=1.2")
    rig = LabRig(db, dnf_lab, [inventory_host(dnf_lab, host)], trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    assert states == {"lab-dnf-1": "rolled_back"}, await host_runs(rig, rollout_id)
    assert host.installed("demo-app") == "1.1-1"
    assert host.dnf_history("demo-app")[-2:] == [
        "Upgrade demo-app-1.2-1.noarch",
        "Downgrade demo-app-1.1-1.noarch",
    ]
    assert patchgate_transactions(host) == ["-y install demo-app-1.2-", "-y downgrade /var/lib/pa"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_d_a_failing_post_scriptlet_fails_the_host_and_it_is_rolled_back(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(dnf_lab, host)
    install(host, "1.1")
    dnf_lab.publish_only(*APP, "demo-app=1.3")
    rig = LabRig(db, dnf_lab, [inventory_host(dnf_lab, host)], trusted(tmp_path, hosts))

    rollout_id, states = await run_rollout(rig, lab_plan())

    runs = await host_runs(rig, rollout_id)
    assert states == {"lab-dnf-1": "rolled_back"}, runs
    assert runs["lab-dnf-1"]["exit_code"] == 1  # dnf itself exits 0: the driver's check
    assert "configuration failed" in runs["lab-dnf-1"]["output_tail"]
    assert host.installed("demo-app") == "1.1-1"
    assert patchgate_transactions(host) == ["-y install demo-app-1.3-", "-y downgrade /var/lib/pa"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_f_rollback_uses_the_secured_rpm_when_the_repository_dropped_it(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(dnf_lab, host)
    install(host, "1.1")
    host.sh("dnf clean packages >/dev/null")  # only the secured copy will remain
    dnf_lab.publish_only(*APP, "demo-app=1.2")
    rig = LabRig(db, dnf_lab, [inventory_host(dnf_lab, host)], trusted(tmp_path, hosts))

    def hook(step: str) -> None:
        if step == "host.apply.intent":  # after preflight secured 1.1, before the apply
            dnf_lab.publish_only("lab-base=1.0", "demo-app=1.0", "demo-app=1.2")

    rollout_id, states = await run_rollout(rig, lab_plan(), hook)

    assert states == {"lab-dnf-1": "rolled_back"}, await host_runs(rig, rollout_id)
    assert "demo-app-1.1-1" not in (dnf_lab.repo.root / "repodata").joinpath(
        "primary.xml.gz").read_bytes().decode("latin-1")  # fmt: skip
    assert host.installed("demo-app") == "1.1-1"
    assert patchgate_transactions(host) == ["-y install demo-app-1.2-", "-y downgrade /var/lib/pa"]
    assert health(host).startswith("200 demo-app 1.1")


async def test_e_a_demo_kernel_update_needs_a_reboot_as_needs_restarting_says(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(dnf_lab, host, publish=(*APP, "demo-kernel=1.1"))
    ex = executor(trusted(tmp_path, hosts))
    inv = inventory_host(dnf_lab, host)
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
    dnf_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(dnf_lab, host, publish=("lab-base=1.0", "demo-app=1.1", "demo-kernel=1.0"))
    ex = executor(trusted(tmp_path, hosts))
    inv = inventory_host(dnf_lab, host)
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


async def test_h_the_drivers_history_undo_reverts_exactly_the_transaction_it_names(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    # The executor rolls back with downgrade (it records no transaction id yet); this
    # runs the driver's own rollback command with an id on the real dnf.
    host = hosts[1]
    reset(dnf_lab, host, publish=(*APP, "demo-kernel=1.1"))
    driver = DnfDriver()
    ex = executor(trusted(tmp_path, hosts))
    inv = inventory_host(dnf_lab, host)
    try:
        applied = await ex.apply(inv, {"demo-app": "1.1-1"}, op_id="op-h1")
        listed = driver.transaction_id()
        assert listed is not None
        tid = driver.parse_transaction_id(await ex.run_argv(inv, listed.full_argv(), 60))
        host.sh("dnf -y -q install demo-kernel-1.1-1 >/dev/null", timeout=120)  # a later one
        undo = driver.rollback(
            {"demo-app": "1.0-1"}, material_dir="/var/lib/patchgate/none", transaction=tid
        )
        out = await ex.run_argv(inv, undo.full_argv(), 120)
    finally:
        ex.close()
    assert applied.ok and out.exit_code == 0, out.tail()
    assert (host.installed("demo-app"), host.installed("demo-kernel")) == ("1.0-1", "1.1-1")
    assert host.dnf_transactions()[-1][1].startswith(f"-y history undo {tid}")


async def test_i_hostile_names_and_versions_are_refused_and_a_pin_runs_whole_on_the_real_dnf(
    dnf_lab: RpmLab, hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    # What the stand-in injection suite showed for dnf until issue 18, on the real tool.
    dnf_lab.publish_only(*APP)
    await hostile_values_on_a_real_host(dnf_lab, hosts[1], trusted(tmp_path, hosts), "dnf")
    assert hosts[1].installed("demo-app") == "1.0-1"
