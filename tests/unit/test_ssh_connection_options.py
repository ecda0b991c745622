"""How the SSH executor turns an InventoryHost into a Fabric Connection: key loading (once,
with a passphrase), jump hosts, host-key policies, per-connection Config, key exchange
order and the sudo password. No network: connections are built, never opened."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from pydantic import SecretStr

from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.hostkeys import StrictPolicy
from workflows.errors import HostUnreachable
from workflows.ports import InventoryHost

PASSPHRASE = "correct horse battery staple"


def _keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
        check=True,
        timeout=30,
    )
    return path


@pytest.fixture
def executor(tmp_path: Path) -> Iterator[SshExecutor]:
    known = tmp_path / "known_hosts"
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIE2z2mPvCiKkBVS5kG0j6Pj0vYcmLQBnP4AYEr8h8g8N"
    known.write_text(f"[10.9.9.9]:2222 ssh-ed25519 {key}\n")
    ex = SshExecutor(SshOptions(known_hosts=known, concurrency=2, kex=("curve25519-sha256",)))
    try:
        yield ex
    finally:
        ex.close()


def test_the_private_key_is_parsed_once_and_no_other_key_is_looked_for(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "id")
    one = InventoryHost(name="a", user="ops", private_key_file=str(key))
    two = InventoryHost(name="b", user="ops", private_key_file=str(key))
    first, second = executor._connect_kwargs(one), executor._connect_kwargs(two)
    assert isinstance(first["pkey"], paramiko.Ed25519Key)
    assert first["pkey"] is second["pkey"]
    assert first["look_for_keys"] is False and first["allow_agent"] is False
    assert "key_filename" not in first and "passphrase" not in first
    agent = InventoryHost(name="c", vars={"ssh_agent": True})
    assert executor._connect_kwargs(agent)["allow_agent"] is True


def test_an_encrypted_key_opens_with_its_passphrase_from_a_secret(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "id_enc", PASSPHRASE)
    host = InventoryHost(
        name="a", private_key_file=str(key), vars={"ssh_key_passphrase": SecretStr(PASSPHRASE)}
    )
    assert isinstance(executor._connect_kwargs(host)["pkey"], paramiko.Ed25519Key)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (None, "it is encrypted: set ssh_key_passphrase"),
        ("wrong " + PASSPHRASE, "wrong passphrase"),
    ],
)
def test_a_missing_or_wrong_passphrase_fails_without_revealing_it(
    executor: SshExecutor, tmp_path: Path, given: str | None, says: str
) -> None:
    key = _keygen(tmp_path / "id_enc", PASSPHRASE)
    host = InventoryHost(
        name="a",
        private_key_file=str(key),
        vars={"ssh_key_passphrase": given} if given else {},
    )
    with pytest.raises(HostUnreachable) as caught:
        executor._connect_kwargs(host)
    assert says in str(caught.value) and str(key) in str(caught.value)
    assert PASSPHRASE not in str(caught.value) and PASSPHRASE not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_passphrase_given_for_an_unencrypted_key_is_ignored(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = _keygen(tmp_path / "id")
    host = InventoryHost(name="a", private_key_file=str(key), vars={"ssh_key_passphrase": "x"})
    assert isinstance(executor._connect_kwargs(host)["pkey"], paramiko.Ed25519Key)


def test_a_jump_host_is_a_strict_gateway_with_its_own_user_and_port(
    executor: SshExecutor,
) -> None:
    host = InventoryHost(
        name="db-1",
        address="10.0.0.5",
        user="deploy",
        jump_host="ops@bastion.example:2200",
        accept_new_host_key=True,
    )
    conn, policy = executor._connection(host)
    gateway = conn.gateway
    assert (conn.host, conn.user, conn.port) == ("10.0.0.5", "deploy", 22)
    assert (gateway.host, gateway.user, gateway.port) == ("bastion.example", "ops", 2200)
    assert policy.accept_new is True  # the target opted in...
    gateway_policy = gateway.client._policy
    assert isinstance(gateway_policy, StrictPolicy) and gateway_policy.accept_new is False
    # ...both verify against the executor's one parsed known_hosts
    assert conn.client._system_host_keys is executor.known.keys
    assert gateway.client._system_host_keys is executor.known.keys
    assert gateway.connect_kwargs["transport_factory"] == executor._transport_factory


def test_a_jump_host_without_user_or_port_uses_the_hosts_user_and_22(
    executor: SshExecutor,
) -> None:
    conn, _ = executor._connection(InventoryHost(name="x", user="deploy", jump_host="bastion"))
    assert (conn.gateway.host, conn.gateway.user, conn.gateway.port) == ("bastion", "deploy", 22)
    assert executor._connection(InventoryHost(name="y"))[0].gateway is None


def test_every_connection_gets_its_own_config(executor: SshExecutor) -> None:
    # A Config shared with connections running in the pool raced when the next one
    # was built (AttributeError 'runners' on 26 of 500 hosts in bench/fanout.py).
    a, _ = executor._connection(InventoryHost(name="a", jump_host="j"))
    b, _ = executor._connection(InventoryHost(name="b"))
    configs = [a.config, a.gateway.config, b.config, executor._config]
    assert len({id(c) for c in configs}) == 4


def test_a_non_standard_port_is_looked_up_as_bracketed_address_and_port(
    executor: SshExecutor,
) -> None:
    conn, _ = executor._connection(InventoryHost(name="n", address="10.9.9.9", port=2222))
    assert conn.port == 2222
    assert executor.known.known("[10.9.9.9]:2222") and not executor.known.known("10.9.9.9")


def test_the_transport_offers_the_configured_key_exchange_first(executor: SshExecutor) -> None:
    left, right = socket.socketpair()
    try:
        transport = executor._transport_factory(left)
        kex = list(transport.get_security_options().kex)
        # paramiko calls it curve25519-sha256@libssh.org and offers mlkem768x25519 first
        assert kex[0] == "curve25519-sha256@libssh.org"
        transport.close()
    finally:
        left.close()
        right.close()


class _FakeConnection:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def run(self, line: str, **kwargs: Any) -> Any:
        stream = kwargs["in_stream"]
        self.calls.append((line, stream.read(1000) if stream else stream))

        class Result:
            exited, stdout, stderr = 0, "", ""

        return Result()


def test_a_sudo_password_goes_to_sudos_stdin_never_onto_the_command_line(
    executor: SshExecutor,
) -> None:
    secret = "s3cr3t-sudo-pw"
    host = InventoryHost(name="a", vars={"sudo_password": SecretStr(secret)})
    conn = _FakeConnection()
    executor._run(host, conn, "sudo -n -- env LC_ALL=C apt-get update")
    executor._run(host, conn, "env LC_ALL=C true")
    (sudo_line, fed), (plain_line, plain_fed) = conn.calls
    assert plain_fed is False  # a command without sudo never gets it on stdin
    assert sudo_line == "sudo -S -p '' -- env LC_ALL=C apt-get update"
    assert fed == secret + "\n"
    assert secret not in sudo_line and secret not in plain_line
    assert plain_line == "env LC_ALL=C true"


def test_without_a_sudo_password_sudo_stays_non_interactive(executor: SshExecutor) -> None:
    conn = _FakeConnection()
    executor._run(InventoryHost(name="a"), conn, "sudo -n -- env LC_ALL=C true")
    assert conn.calls == [("sudo -n -- env LC_ALL=C true", False)]
