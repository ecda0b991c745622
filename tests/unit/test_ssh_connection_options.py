"""How the SSH executor turns an InventoryHost into a connection (key loading once, with a
passphrase; jump hosts; host-key policies; key exchange and cipher order), and how a
connection behaves against a real SSH server (paramiko's server side, in process):
host keys verified, commands' output and exit codes, timeouts, lost connections and the
sudo password fed to sudo only."""

from __future__ import annotations

import dataclasses
import getpass
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from pydantic import SecretStr

from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.channel import new_transport
from integrations.ssh.connection import SUDO_PROMPT, SshConnection
from integrations.ssh.hostkeys import KnownHosts
from tests.unit.sshserver import TestSshServer, keygen
from workflows.errors import (
    CommandFailed,
    ConfigError,
    HostKeyRejected,
    HostUnreachable,
    InputError,
)
from workflows.ports import InventoryHost

PASSPHRASE = "correct horse battery staple"
SUDO_PASSWORD = "s3cr3t-sudo-pw"


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


# --- building a connection (no network) -----------------------------------------------------


def test_the_private_key_is_parsed_once_and_no_other_key_is_looked_for(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "id")
    one = InventoryHost(name="a", user="ops", private_key_file=str(key))
    two = InventoryHost(name="b", user="ops", private_key_file=str(key))
    first, second = executor.connection(one).target.choice, executor.connection(two).target.choice
    assert [k for _, k in first.keys] == [k for _, k in second.keys]  # the key only
    assert isinstance(first.keys[0][1], paramiko.Ed25519Key)
    assert first.keys[0][1] is second.keys[0][1]
    assert first.agent is False
    agent = executor.connection(InventoryHost(name="c", vars={"ssh_agent": True})).target.choice
    assert agent.agent is True


def test_an_encrypted_key_opens_with_its_passphrase_from_a_secret(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "id_enc", PASSPHRASE)
    host = InventoryHost(
        name="a", private_key_file=str(key), vars={"ssh_key_passphrase": SecretStr(PASSPHRASE)}
    )
    assert isinstance(executor.connection(host).target.choice.keys[0][1], paramiko.Ed25519Key)


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
    key = keygen(tmp_path / "id_enc", PASSPHRASE)
    host = InventoryHost(
        name="a",
        private_key_file=str(key),
        vars={"ssh_key_passphrase": given} if given else {},
    )
    with pytest.raises(HostUnreachable) as caught:
        executor.connection(host)
    assert says in str(caught.value) and str(key) in str(caught.value)
    assert PASSPHRASE not in str(caught.value) and PASSPHRASE not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_passphrase_given_for_an_unencrypted_key_is_ignored(
    executor: SshExecutor, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "id")
    host = InventoryHost(name="a", private_key_file=str(key), vars={"ssh_key_passphrase": "x"})
    assert isinstance(executor.connection(host).target.choice.keys[0][1], paramiko.Ed25519Key)


def test_a_jump_host_is_strict_with_its_own_user_and_port(executor: SshExecutor) -> None:
    host = InventoryHost(
        name="db-1",
        address="10.0.0.5",
        user="deploy",
        jump_host="ops@bastion.example:2200",
        accept_new_host_key=True,
    )
    conn = executor.connection(host)
    jump, target = conn.logins
    assert (target.hop.address, target.hop.user, target.hop.port) == ("10.0.0.5", "deploy", 22)
    assert (jump.hop.address, jump.hop.user, jump.hop.port) == ("bastion.example", "ops", 2200)
    assert target.check.accept_new is True  # the target opted in...
    assert jump.check.accept_new is False  # ...the jump host never accepts a new key
    assert target.check.stores[0] is executor.known is jump.check.stores[0]


def test_a_jump_host_without_user_or_port_logs_in_as_openssh_would_on_22(
    executor: SshExecutor,
) -> None:
    conn = executor.connection(InventoryHost(name="x", user="deploy", jump_host="bastion"))
    jump, _ = conn.logins
    # OpenSSH: a ProxyJump hop without user@ logs in as its own User (config) or the
    # local user, not as the target's user.
    assert (jump.hop.address, jump.hop.user, jump.hop.port) == ("bastion", getpass.getuser(), 22)
    assert len(executor.connection(InventoryHost(name="y")).logins) == 1


@pytest.mark.parametrize("spec", ["bastion:22; reboot", "bastion:0", "bastion:99999", "ops@", ""])
def test_a_malformed_jump_host_is_an_input_error(executor: SshExecutor, spec: str) -> None:
    with pytest.raises(InputError, match="jump host"):
        executor.connection(InventoryHost(name="x", jump_host=spec or ":22"))


def test_a_reconnection_never_accepts_a_new_key(executor: SshExecutor) -> None:
    host = InventoryHost(name="n", accept_new_host_key=True)
    assert executor.connection(host, accept_new=False).target.check.accept_new is False


def test_a_non_standard_port_is_looked_up_as_bracketed_address_and_port(
    executor: SshExecutor,
) -> None:
    conn = executor.connection(InventoryHost(name="n", address="10.9.9.9", port=2222))
    assert conn.target.check.name == "[10.9.9.9]:2222"
    assert executor.known.known("[10.9.9.9]:2222") and not executor.known.known("10.9.9.9")


def test_known_hosts_lookups_cover_plain_and_hashed_entries(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(keygen(tmp_path / "k")))
    other = paramiko.Ed25519Key.from_private_key_file(str(keygen(tmp_path / "o")))
    blob = f"{key.get_name()} {key.get_base64()}"
    hashed = paramiko.HostKeys.hash_host("10.1.1.1")
    (tmp_path / "kh").write_text(
        "# a comment\n\n"
        f"10.0.0.1,web-1 {blob}\n{hashed} {blob}\n"
        f"10.0.0.1 {other.get_name()} {other.get_base64()}\n"  # a later duplicate: ignored
        "10.0.0.9 ssh-unknown-type AAAA\n"  # a key type paramiko does not know: skipped
    )
    known = KnownHosts(tmp_path / "kh")
    for name in ("10.0.0.1", "web-1", "10.1.1.1"):
        assert known.lookup(name) == {key.get_name(): key}, name
    assert known.lookup("10.0.0.2") is None and not known.known("10.0.0.9")
    known.add("[10.0.0.2]:2200", key)
    assert known.known("[10.0.0.2]:2200") and not known.known("10.0.0.2")
    (tmp_path / "bad").write_text(f"10.0.0.1 {blob}\n10.0.0.2 ssh-ed25519 not-base64!\n")
    with pytest.raises(ConfigError, match=r"bad:2: not a known_hosts entry"):
        KnownHosts(tmp_path / "bad")


def test_the_transport_offers_the_configured_kex_and_aes_gcm_first() -> None:
    left, right = socket.socketpair()
    try:
        transport = new_transport(left, ("curve25519-sha256",))
        options = transport.get_security_options()
        # paramiko calls it curve25519-sha256@libssh.org and offers mlkem768x25519 first
        assert next(iter(options.kex)) == "curve25519-sha256@libssh.org"
        assert list(options.ciphers)[:2] == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
        assert "aes128-ctr" in options.ciphers  # still offered to servers without GCM
        transport.close()
    finally:
        left.close()
        right.close()


# --- against a real SSH server ---------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestSshServer]:
    srv = TestSshServer(tmp_path)
    try:
        yield srv
    finally:
        srv.close()


def _host(server: TestSshServer, **kwargs: object) -> InventoryHost:
    return InventoryHost(
        name="srv",
        address="127.0.0.1",
        port=server.port,
        user="ops",
        private_key_file=str(server.client_key_path),
        **kwargs,  # type: ignore[arg-type]
    )


def _executor(tmp_path: Path, known_hosts: str) -> SshExecutor:
    (tmp_path / "kh").write_text(known_hosts)
    return SshExecutor(SshOptions(known_hosts=tmp_path / "kh", concurrency=2, connect_timeout=5))


def _open(ex: SshExecutor, host: InventoryHost) -> SshConnection:
    conn = ex.connection(host)
    conn.open()
    return conn


def test_output_and_exit_code_come_back_from_the_server(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        out = conn.run("say", timeout=10)
        assert (out.exit_code, out.stdout, out.stderr) == (3, "out\n", "err\n")
        assert conn.run("true", timeout=10).exit_code == 0  # several commands, one connection
    finally:
        conn.close()


def test_megabytes_on_stdout_and_stderr_at_once_do_not_stall(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        out = conn.run(f"flood {3 * 1024 * 1024}", timeout=60)
    finally:
        conn.close()
    assert out.exit_code == 0
    assert len(out.stdout) == len(out.stderr) == 3 * 1024 * 1024


def test_a_command_over_its_timeout_fails_with_a_timeout_error(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        with pytest.raises(CommandFailed, match=r"timed out after 0\.5s") as caught:
            conn.run("hang", timeout=0.5)
        assert caught.value.exit_code == -1
    finally:
        conn.close()


def test_a_timeout_is_a_timeout_even_when_the_timer_thread_is_slow_to_end(
    server: TestSshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invoke's timer closes the channel and only then ends its thread; on a busy machine the
    command's thread wakes first and Invoke sees no timeout (it judges by the timer thread
    being gone). That must still be a timeout, not a command killed with exit -1."""
    from fabric.runners import Remote

    close = Remote.kill

    def slow_kill(self: Remote) -> None:
        close(self)
        time.sleep(1.0)  # the timer thread is still alive when the command's thread wakes

    monkeypatch.setattr(Remote, "kill", slow_kill)
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        with pytest.raises(CommandFailed, match=r"timed out after 0\.5s") as caught:
            conn.run("hang", timeout=0.5)
        assert caught.value.exit_code == -1
        assert conn.run("killed", timeout=10).exit_code == -1  # a quick kill stays exit -1
    finally:
        conn.close()


def test_a_dropped_connection_is_host_unreachable_and_a_killed_command_exit_minus_one(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        assert conn.run("killed", timeout=10).exit_code == -1  # connection still up
        with pytest.raises(HostUnreachable, match="connection lost"):
            conn.run("drop", timeout=10)
    finally:
        conn.close()


def test_the_sudo_password_goes_to_sudo_only_when_it_asks(
    server: TestSshServer, tmp_path: Path
) -> None:
    ex = _executor(tmp_path, server.known_hosts_line + "\n")
    conn = _open(ex, _host(server, vars={"sudo_password": SecretStr(SUDO_PASSWORD)}))
    try:
        out = conn.run("sudo -n -- env LC_ALL=C apt-get update", timeout=10)
        nopasswd = conn.run("sudo -n -- env LC_ALL=C nopasswd", timeout=10)
        plain = conn.run("stdin", timeout=10)
    finally:
        conn.close()
    assert server.commands == [
        f"sudo -S -p '{SUDO_PROMPT}' -- env LC_ALL=C apt-get update",
        f"sudo -S -p '{SUDO_PROMPT}' -- env LC_ALL=C nopasswd",
        "stdin",
    ]
    # sent once to the sudo that prompted; never to a sudo that did not ask, nor elsewhere
    assert server.stdins == [(SUDO_PASSWORD + "\n").encode(), b"", b""]
    assert all(SUDO_PASSWORD not in c for c in server.commands)
    assert (out.exit_code, out.stdout, out.stderr) == (0, "ran as root\n", "")  # no prompt
    assert nopasswd.exit_code == 0 and plain.exit_code == 0


def test_without_a_sudo_password_sudo_stays_non_interactive(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _open(_executor(tmp_path, server.known_hosts_line + "\n"), _host(server))
    try:
        conn.run("sudo -n -- env LC_ALL=C true", timeout=10)
    finally:
        conn.close()
    assert server.commands == ["sudo -n -- env LC_ALL=C true"]


def test_an_unknown_host_key_is_refused_naming_host_and_fingerprint(
    server: TestSshServer, tmp_path: Path
) -> None:
    conn = _executor(tmp_path, "").connection(_host(server))
    with pytest.raises(HostKeyRejected, match=r"unknown host key ssh-ed25519 SHA256:") as caught:
        conn.open()
    assert "srv" in str(caught.value) and server.commands == []


def test_a_changed_host_key_is_refused_even_with_the_opt_in(
    server: TestSshServer, tmp_path: Path
) -> None:
    other = paramiko.Ed25519Key.from_private_key_file(str(keygen(tmp_path / "other")))
    line = f"[127.0.0.1]:{server.port} {other.get_name()} {other.get_base64()}\n"
    conn = _executor(tmp_path, line).connection(_host(server, accept_new_host_key=True))
    with pytest.raises(HostKeyRejected, match="host key CHANGED"):
        conn.open()


def test_a_known_host_offering_a_key_of_another_type_is_refused_as_changed(
    server: TestSshServer, tmp_path: Path
) -> None:
    rsa = tmp_path / "rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)],
        check=True,
        timeout=60,
    )
    kind, blob = rsa.with_suffix(".pub").read_text().split()[:2]
    conn = _executor(tmp_path, f"[127.0.0.1]:{server.port} {kind} {blob}\n").connection(
        _host(server, accept_new_host_key=True)
    )
    with pytest.raises(HostKeyRejected, match=r"host key CHANGED.*offered ssh-ed25519"):
        conn.open()


def test_keys_from_ssh_agent_log_in_when_the_host_allows_the_agent(
    server: TestSshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"}
        subprocess.run(
            ["ssh-add", "-q", str(server.client_key_path)], env=env, check=True, timeout=30
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        ex = _executor(tmp_path, server.known_hosts_line + "\n")
        host = dataclasses.replace(_host(server), private_key_file=None, vars={"ssh_agent": True})
        conn = ex.connection(host)
        conn.open()
        try:
            assert conn.run("say", timeout=10).exit_code == 3
        finally:
            conn.close()
        # As OpenSSH: the agent is used whenever SSH_AUTH_SOCK is set (no opt-in needed)...
        plain = ex.connection(dataclasses.replace(host, vars={}))
        plain.open()
        plain.close()
        # ...and without an agent nor a key (HOME without ~/.ssh) there is nothing to offer.
        monkeypatch.delenv("SSH_AUTH_SOCK")
        monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
        with pytest.raises(HostUnreachable, match="no key to offer"):
            ex.connection(dataclasses.replace(host, vars={})).open()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_an_opted_in_unknown_key_is_accepted_and_handed_back(
    server: TestSshServer, tmp_path: Path
) -> None:
    ex = _executor(tmp_path, "")
    conn = ex.connection(_host(server, accept_new_host_key=True))
    conn.open()
    conn.close()
    assert conn.accepted is not None
    name, key = conn.accepted
    assert (name, key) == (f"[127.0.0.1]:{server.port}", server.host_key)
    assert ex.known.known(name)


def test_a_refused_key_and_a_closed_port_are_host_unreachable(
    server: TestSshServer, tmp_path: Path
) -> None:
    ex = _executor(tmp_path, server.known_hosts_line + "\n")
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(HostUnreachable, match="authentication failed"):
        ex.connection(dataclasses.replace(_host(server), private_key_file=str(stranger))).open()
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(HostUnreachable, match="cannot connect"):
        ex.connection(InventoryHost(name="gone", address="127.0.0.1", port=port)).open()


async def test_run_argv_goes_through_the_executors_pool(
    server: TestSshServer, tmp_path: Path
) -> None:
    ex = _executor(tmp_path, server.known_hosts_line + "\n")
    try:
        out = await ex.run_argv(_host(server), ["say"], 10)
    finally:
        ex.close()
    assert out.exit_code == 3 and out.stdout == "out\n"
    assert server.commands == ["env LC_ALL=C say"]
