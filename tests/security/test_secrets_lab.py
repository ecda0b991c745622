"""Secrets on real hosts: a sudo password and a private-key passphrase (inventory
variables ``sudo_password`` and ``ssh_key_passphrase``) do their job and never appear in
a command line sshd ran, in any program's argv on the host, in a result, an error
message or the DEBUG log."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.ssh import SshExecutor, SshOptions
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.security import cmdlog
from tests.security.test_injection_lab import inventory
from workflows.errors import ExecutorError, HostUnreachable

MARK = "PGSECRET"
SUDO_PASSWORD = f"{MARK}-sudo-Zq7"
PASSPHRASE = f"{MARK}-pass-Kd2"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    """A host whose sudo asks the patchgate user for a password."""
    machine = lab.host("lab-secret", 42)
    machine.prepare()
    cmdlog.install(machine)
    machine._write("etc/sudoers.d/zz-password", "patchgate ALL=(ALL:ALL) ALL\n", 0o440)
    try:
        machine.start()
        machine.sh(f"echo 'patchgate:{SUDO_PASSWORD}' | chpasswd")
        yield machine
    finally:
        machine.stop()


@pytest.fixture
def executor(host: LabHost, tmp_path: Path) -> Iterator[SshExecutor]:
    kh = tmp_path / "known_hosts"
    kh.write_text(host.known_hosts_line + "\n")
    ex = SshExecutor(
        SshOptions(known_hosts=kh, concurrency=2, command_timeout=120, connect_timeout=5)
    )
    try:
        yield ex
    finally:
        ex.close()


def encrypted_key(directory: Path) -> Path:
    key = directory / "encrypted_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key)],
        check=True,
        timeout=30,
    )
    return key


def on_host(host: LabHost) -> str:
    return "\n".join(cmdlog.ssh_commands(host)) + repr(cmdlog.argvs(host))


async def test_the_sudo_password_reaches_sudo_and_nothing_else(
    lab: Lab, host: LabHost, executor: SshExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # paramiko too: configure_logging (run in-process by earlier tests) caps it at WARNING
    caplog.set_level(logging.DEBUG, logger="paramiko")
    lab.publish_only("demo-app=1.0", "demo-app=1.1")
    host.sh("apt-get update -qq -o APT::Update::Error-Mode=any", timeout=120)
    cmdlog.clear(host)
    target = inventory(lab, host, vars={"sudo_password": SUDO_PASSWORD})
    result = await executor.apply(target, {"demo-app": "1.1"}, op_id=uuid.uuid4().hex)
    assert result.ok, result.output_tail  # sudo needed the password, and got it
    assert host.installed("demo-app") == "1.1"
    assert cmdlog.argvs(host, "apt-get")  # the package command ran under sudo
    assert MARK not in on_host(host)
    assert MARK not in repr(result)
    assert MARK not in caplog.text
    assert "DEBUG" in caplog.text or caplog.records  # the log was captured at DEBUG

    cmdlog.clear(host)
    wrong = inventory(lab, host, vars={"sudo_password": f"{MARK}-wrong"})
    with pytest.raises(ExecutorError) as caught:
        await executor.apply(wrong, {"demo-app": "1.0"}, op_id=uuid.uuid4().hex)
    assert MARK not in str(caught.value)
    assert host.installed("demo-app") == "1.1"  # nothing changed
    assert MARK not in on_host(host)
    assert MARK not in caplog.text


async def test_a_key_passphrase_unlocks_the_key_and_never_shows(
    lab: Lab,
    host: LabHost,
    executor: SshExecutor,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # paramiko too: configure_logging (run in-process by earlier tests) caps it at WARNING
    caplog.set_level(logging.DEBUG, logger="paramiko")
    key = encrypted_key(tmp_path)
    pub = key.with_suffix(".pub").read_text().strip()
    host.sh(f"echo '{pub}' >> /home/patchgate/.ssh/authorized_keys")
    cmdlog.clear(host)
    good = inventory(lab, host, private_key_file=str(key), vars={"ssh_key_passphrase": PASSPHRASE})
    facts = await executor.facts(good)
    assert facts.package_manager == "apt"
    assert MARK not in repr(facts)

    for vars_ in ({"ssh_key_passphrase": f"{MARK}-wrong"}, {}):
        bad = inventory(lab, host, private_key_file=str(key), vars=vars_)
        other = SshExecutor(executor.options)  # no key cached from the good run
        try:
            with pytest.raises(HostUnreachable) as caught:
                await other.facts(bad)
        finally:
            other.close()
        assert "passphrase" in str(caught.value)  # it says what is wrong...
        assert MARK not in str(caught.value)  # ...without the value
    assert MARK not in on_host(host)
    assert MARK not in caplog.text
