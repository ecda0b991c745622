"""The SSH executor on its own against lab hosts: host keys, dropped connections,
reboot-required."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from integrations.ssh import SshExecutor, SshOptions
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.kit import inventory_host, known_hosts
from tests.lab_tests.test_lab_engine import hosts, reset
from workflows.db import Database, read_only
from workflows.errors import HostKeyRejected
from workflows.hostkeys import DbKnownHostStore
from workflows.models import Event, KnownHostKey

__all__ = ["hosts"]


def executor(kh: Path, db: Database | None = None) -> SshExecutor:
    return SshExecutor(
        SshOptions(known_hosts=kh, concurrency=4, command_timeout=120, connect_timeout=5),
        host_keys=DbKnownHostStore(db) if db is not None else None,
    )


async def test_f_an_unknown_host_key_is_refused_naming_host_and_fingerprint(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[2]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyRejected) as caught:
        await executor(empty).facts(inventory_host(lab, host))
    assert host.name in str(caught.value)
    assert "SHA256:" in str(caught.value)


async def test_f_an_opted_in_new_key_is_stored_and_audited_and_a_changed_one_refused(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[2]
    reset(lab, host)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = inventory_host(lab, host, accept_new_host_key=True)

    facts = await executor(empty, db).facts(inv)
    assert facts.package_manager == "apt"
    async with read_only(db) as session:
        stored = (await session.scalars(sa.select(KnownHostKey))).all()
        events = (await session.scalars(sa.select(Event.kind))).all()
    assert [(k.host, f"{k.key_type} {k.key_base64}") for k in stored] == [
        (host.name, host.host_key_pub)
    ]
    assert "ssh.host_key.accepted" in events

    host.stop()
    host.prepare(new_host_key=True)
    host.start()
    with pytest.raises(HostKeyRejected, match="CHANGED"):
        await executor(empty, db).facts(inv)  # a new executor: the key comes from the db


async def test_f_a_changed_key_in_known_hosts_is_refused_even_with_the_opt_in(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[2]
    kh = known_hosts(tmp_path, [host])
    host.stop()
    host.prepare(new_host_key=True)
    host.start()
    with pytest.raises(HostKeyRejected, match="CHANGED"):
        await executor(kh).facts(inventory_host(lab, host, accept_new_host_key=True))


async def test_g_a_connection_dropped_mid_upgrade_still_reads_the_true_result(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    reset(lab, host)
    host.sh("apt-get update -qq")
    # Make dpkg's part take a few seconds, so the drop lands in the middle of it.
    host.sh("echo 'DPkg::Pre-Invoke {\"sleep 4\";};' > /etc/apt/apt.conf.d/99slow")
    ex = executor(known_hosts(tmp_path, hosts))
    task = asyncio.create_task(
        ex.apply(inventory_host(lab, host), {"demo-app": "1.1"}, op_id="op-g")
    )
    started = False
    for _ in range(600):  # bounded: 60 s (a loaded machine takes a while to get there)
        await asyncio.sleep(0.1)
        # the apt-get process itself (its name), not a command line that mentions it:
        # the facts script lists "apt-get" too, and dropping during it tests something else
        if "apt-get" in host.sh("ps -eo comm=").split():
            started = True
            break
    assert started, "the upgrade never started"  # dropping before it tests something else
    host.sh("pkill -f '^sshd: patchgate' || true")
    result = await asyncio.wait_for(task, 120)

    assert result.exit_code == 0
    assert result.after == {"demo-app": "1.1"}
    assert result.before == {"demo-app": "1.0"}
    assert host.dpkg_installs("demo-app", "1.1") == 1
    status = await ex.apply_status(inventory_host(lab, host), op_id="op-g")
    assert status is not None and status.exit_code == 0
    assert await ex.apply_status(inventory_host(lab, host), op_id="op-never") is None


async def test_h_reboot_required_is_detected_and_a_reboot_brings_a_new_boot_id(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(lab, host, publish=("demo-app=1.0", "demo-kernel=1.0", "demo-kernel=1.1"))
    host.sh("apt-get update -qq")
    ex = executor(known_hosts(tmp_path, hosts))
    inv = inventory_host(lab, host)
    assert not (await ex.facts(inv)).reboot_required

    result = await ex.apply(inv, {"demo-kernel": "1.1"}, op_id="op-h")
    assert result.ok and result.reboot_required
    before = (await ex.facts(inv)).boot_id

    new = await ex.reboot(inv)
    assert new != before
    assert not (await ex.facts(inv)).reboot_required


async def test_preflight_refuses_a_pin_the_repository_no_longer_offers(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    reset(lab, host, publish=("demo-app=1.1",))  # 1.0 (installed) and 1.2 not offered
    ex = executor(known_hosts(tmp_path, hosts))
    inv = inventory_host(lab, host)
    try:
        gone = await ex.preflight(inv, {"demo-app": "1.2"})
        offered = await ex.preflight(inv, {"demo-app": "1.1"})
        installed = await ex.preflight(inv, {"demo-app": "1.0"})  # dropped, but installed
    finally:
        ex.close()
    assert (gone.ok, gone.unavailable) == (False, ["demo-app=1.2"])
    assert (offered.ok, offered.unavailable) == (True, [])
    assert installed.unavailable == []
    assert host.installed("demo-app") == "1.0"  # a preflight changes nothing
