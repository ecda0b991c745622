"""Connection options on real lab hosts: a jump host (ProxyJump through another lab host's
sshd), a passphrase-protected private key, and sudo that asks for a password (the
password a secret from the inventory, never written to logs, the database or the host)."""

from __future__ import annotations

import dataclasses
import logging
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.hostkeys import key_name
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.kit import LabRig, inventory_host, known_hosts, lab_plan, run_rollout
from tests.lab_tests.test_lab_engine import hosts, reset
from workflows.db import Database
from workflows.errors import CommandFailed, HostKeyRejected, HostUnreachable

__all__ = ["hosts"]

PASSPHRASE = "lab passphrase 7f3e"
SUDO_PASSWORD = "Lab-sudo-9c41e2"


def executor(kh: Path) -> SshExecutor:
    return SshExecutor(
        SshOptions(known_hosts=kh, concurrency=4, command_timeout=120, connect_timeout=5)
    )


def _jump_spec(host: LabHost) -> str:
    return f"patchgate@{host.address}:{host.port}"


async def test_a_host_is_reached_through_its_jump_host_and_not_without_it(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    jump, target = hosts[0], hosts[1]
    kh = known_hosts(tmp_path, [jump, target])
    inv = inventory_host(lab, target, jump_host=_jump_spec(jump))
    ex = executor(kh)
    try:
        facts = await ex.facts(inv)
        assert facts.package_manager == "apt" and facts.boot_id == target.boot_id()
        # The same target, with the jump host's sshd down: the connection went through it.
        jump.stop_sshd()
        try:
            with pytest.raises(HostUnreachable, match="jump host") as caught:
                await ex.facts(inv)
            assert target.name in str(caught.value)
            assert (await ex.facts(inventory_host(lab, target))).boot_id == facts.boot_id
        finally:
            jump.start_sshd()
    finally:
        ex.close()


async def test_a_jump_host_with_an_unknown_key_is_refused_even_if_the_target_opts_in(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    jump, target = hosts[0], hosts[1]
    kh = known_hosts(tmp_path, [target])  # the jump host's key is not known
    inv = inventory_host(lab, target, jump_host=_jump_spec(jump), accept_new_host_key=True)
    ex = executor(kh)
    try:
        with pytest.raises(HostKeyRejected, match="unknown host key") as caught:
            await ex.facts(inv)
        assert jump.address in str(caught.value)
        assert not ex.known.known(key_name(jump.address, jump.port))  # nothing was accepted
    finally:
        ex.close()


@pytest.fixture
def encrypted_key(lab: Lab, hosts: list[LabHost], tmp_path: Path) -> Path:
    key = tmp_path / "id_encrypted"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)],
        check=True,
        timeout=30,
    )
    pub = key.with_suffix(".pub").read_text().strip()
    hosts[2].sh(f"echo {shlex.quote(pub)} >> /home/patchgate/.ssh/authorized_keys")
    return key


async def test_a_passphrase_protected_key_logs_in_and_a_wrong_passphrase_is_a_clear_error(
    lab: Lab,
    hosts: list[LabHost],
    tmp_path: Path,
    encrypted_key: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    host = hosts[2]
    ex = executor(known_hosts(tmp_path, [host]))
    try:
        inv = dataclasses.replace(
            inventory_host(lab, host),
            private_key_file=str(encrypted_key),
            vars={"ssh_key_passphrase": SecretStr(PASSPHRASE)},
        )
        assert (await ex.facts(inv)).boot_id == host.boot_id()
        wrong = dataclasses.replace(
            inv, vars={"ssh_key_passphrase": SecretStr("not " + PASSPHRASE)}
        )
        with pytest.raises(HostUnreachable, match="wrong passphrase") as caught:
            await ex.facts(wrong)
        assert PASSPHRASE not in str(caught.value)
    finally:
        ex.close()
    assert PASSPHRASE not in caplog.text


def _require_sudo_password(host: LabHost) -> None:
    """The patchgate user gets a password, and sudoers asks for it."""
    host.sh(
        f"echo {shlex.quote('patchgate:' + SUDO_PASSWORD)} | chpasswd && "
        "echo 'patchgate ALL=(ALL) ALL' > /etc/sudoers.d/patchgate && "
        "chmod 0440 /etc/sudoers.d/patchgate"
    )


async def test_sudo_asking_for_a_password_gets_it_from_the_inventory_and_nothing_keeps_it(
    lab: Lab,
    hosts: list[LabHost],
    db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    host = hosts[2]
    reset(lab, host)
    _require_sudo_password(host)
    kh = known_hosts(tmp_path, [host])

    # Without the password, sudo refuses: nothing is installed.
    ex = executor(kh)
    try:
        with pytest.raises(CommandFailed, match="could not start") as caught:
            await ex.apply(inventory_host(lab, host), {"demo-app": "1.1"}, op_id="op-nopw")
        assert "password is required" in caught.value.output_tail
        # A wrong one: refused too, and the message does not carry it.
        wrong = inventory_host(lab, host, vars={"sudo_password": SecretStr("wrong-" + "pw")})
        with pytest.raises(CommandFailed) as caught:
            await ex.apply(wrong, {"demo-app": "1.1"}, op_id="op-wrongpw")
        assert "wrong-pw" not in str(caught.value) + caught.value.output_tail
    finally:
        ex.close()
    assert host.installed("demo-app") == "1.0"

    # With it, through the engine: upgraded and healthy.
    inv = inventory_host(lab, host, vars={"sudo_password": SecretStr(SUDO_PASSWORD)})
    rig = LabRig(db, lab, [inv], kh)
    rollout_id, states = await run_rollout(rig, lab_plan())
    assert states == {host.name: "healthy"}
    assert host.installed("demo-app") == "1.1"

    # Never kept anywhere: logs, the database (every table, WAL included), the host.
    assert SUDO_PASSWORD not in caplog.text
    url = db.engine.url.database
    assert url
    for path in (Path(url), Path(url + "-wal")):
        if path.exists():
            assert SUDO_PASSWORD.encode() not in path.read_bytes(), path
    leftovers = host.sh(
        f"grep -rl -- {shlex.quote(SUDO_PASSWORD)} /var/lib/patchgate /var/log /tmp /root "
        "/home 2>/dev/null || true"
    )
    assert leftovers.strip() == ""
    assert (await rig.rollout(rollout_id)).state == "succeeded"
