"""``patchgate ssh check``: the effective settings and their sources, keys, host-key
verdict and a harmless command, against the in-process SSH server."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.main import main
from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.check import check
from tests.lab.sshconfig import ssh_agent_with
from tests.unit.sshserver import TestSshServer, keygen
from workflows.ports import InventoryHost


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestSshServer]:
    srv = TestSshServer(tmp_path)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def home(tmp_path: Path, server: TestSshServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME whose only key is ~/.ssh/id_ed25519 (the key the server accepts)."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    shutil.copy(server.client_key_path, ssh / "id_ed25519")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (ssh / "config").write_text(
        f"Host srv\n    HostName 127.0.0.1\n    Port {server.port}\nHost *\n    User ops\n"
    )
    return ssh


def executor(home: Path, known: str) -> SshExecutor:
    (home / "kh").write_text(known)
    return SshExecutor(
        SshOptions(known_hosts=home / "kh", ssh_config=home / "config", connect_timeout=5)
    )


async def test_check_shows_each_setting_with_its_source_and_runs_a_harmless_command(
    server: TestSshServer, home: Path
) -> None:
    ex = executor(home, server.known_hosts_line + "\n")
    try:
        report = await check(ex, InventoryHost(name="srv"))
    finally:
        ex.close()
    assert report.ok and report.result == "`uname -sr`: "
    assert server.commands == ["uname -sr"]
    (hop,) = report.hops
    assert hop.settings["hostname"] == "127.0.0.1" and hop.settings["port"] == server.port
    assert hop.sources["hostname"] == f"config {home}/config:2"
    assert hop.sources["port"] == f"config {home}/config:3"
    assert hop.sources["user"] == f"config {home}/config:5"
    assert hop.sources["identityfile"] == "default identities"
    assert hop.keys[0].startswith(f"{home}/id_ed25519 (ssh-ed25519 SHA256:")
    assert hop.host_key.startswith("known (ssh-ed25519 SHA256:")


async def test_check_never_accepts_an_unknown_host_key_even_with_the_opt_in(
    server: TestSshServer, home: Path
) -> None:
    ex = executor(home, "")
    try:
        report = await check(ex, InventoryHost(name="srv", accept_new_host_key=True))
        assert not ex.known.known(f"[127.0.0.1]:{server.port}")
    finally:
        ex.close()
    assert not report.ok and "unknown host key" in report.result
    assert report.hops[0].host_key.startswith("unknown (ssh-ed25519")
    assert server.commands == []


def test_the_cli_prints_json_and_exits_1_when_a_host_is_not_reached(
    server: TestSshServer,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (home / "kh").write_text(server.known_hosts_line + "\n")
    monkeypatch.setenv("PATCHGATE_DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite")
    monkeypatch.setenv("PATCHGATE_SSH_CONFIG", str(home / "config"))
    monkeypatch.setenv("PATCHGATE_SSH_KNOWN_HOSTS", str(home / "kh"))
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["ssh", "check", "--bare", "--json", "srv"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["ok"] and printed["jump_chain"] == []
    assert printed["hops"][0]["sources"]["user"] == f"config {home}/config:5"
    assert main(["ssh", "check", "--bare", "nowhere.invalid"]) == 1
    text = capsys.readouterr().out
    assert "nowhere.invalid: NOT reached" in text and "cannot connect" in text


async def test_a_host_key_alias_from_the_config_is_the_name_looked_up(
    server: TestSshServer, home: Path
) -> None:
    blob = server.known_hosts_line.split(" ", 1)[1]
    with (home / "config").open("r+") as cfg:
        text = cfg.read().replace("Host srv\n", "Host srv\n    HostKeyAlias srv-alias\n")
        cfg.seek(0)
        cfg.write(text)
    ex = executor(home, f"srv-alias {blob}\n")  # no [127.0.0.1]:port entry at all
    try:
        reached = await check(ex, InventoryHost(name="srv"))
    finally:
        ex.close()
    other = executor(home, server.known_hosts_line + "\n")  # the address, not the alias
    try:
        refused = await check(other, InventoryHost(name="srv"))
    finally:
        other.close()
    assert reached.ok and reached.hops[0].settings["host_key_name"] == "srv-alias"
    assert not refused.ok and "unknown host key" in refused.result


async def test_identities_only_limits_the_agent_to_the_identity_files_keys(
    server: TestSshServer, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "id_ed25519").unlink()  # no default key: only the agent can log in
    other = keygen(tmp_path / "other")
    # The server's key is in the agent; its public half alone sits beside the config.
    shutil.copy(f"{server.client_key_path}.pub", home / "agent_key.pub")
    text = (home / "config").read_text()

    async def reached(identity: Path) -> bool:
        (home / "config").write_text(
            text.replace(
                "Host srv\n", f"Host srv\n    IdentitiesOnly yes\n    IdentityFile {identity}\n"
            )
        )
        ex = executor(home, server.known_hosts_line + "\n")
        try:
            return (await check(ex, InventoryHost(name="srv"))).ok
        finally:
            ex.close()

    with ssh_agent_with(server.client_key_path, tmp_path) as env:
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        assert await reached(home / "agent_key")  # the agent's key matches the file
        assert not await reached(other)  # another identity: the agent's key is held back


async def test_stricthostkeychecking_no_in_the_config_does_not_let_an_unknown_key_in(
    server: TestSshServer, home: Path
) -> None:
    text = (home / "config").read_text()
    (home / "config").write_text(
        text.replace("Host srv\n", "Host srv\n    StrictHostKeyChecking no\n")
    )
    ex = executor(home, "")
    try:
        report = await check(ex, InventoryHost(name="srv"))
    finally:
        ex.close()
    assert not report.ok and "unknown host key" in report.result
    assert report.warnings == [
        "srv: StrictHostKeyChecking no in the SSH config is ignored; PatchGate checks "
        "host keys strictly"
    ]
    assert server.commands == []


async def test_connect_timeout_from_the_config_bounds_a_silent_server(home: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP, never says a word
    port = silent.getsockname()[1]
    (home / "config").write_text(
        f"Host mute\n    HostName 127.0.0.1\n    Port {port}\n    ConnectTimeout 1\n"
    )
    (home / "kh").write_text("")
    ex = SshExecutor(
        SshOptions(known_hosts=home / "kh", ssh_config=home / "config", connect_timeout=30)
    )
    started = time.monotonic()
    try:
        report = await check(ex, InventoryHost(name="mute"))
    finally:
        ex.close()
        silent.close()
    assert not report.ok and time.monotonic() - started < 10
    assert report.hops[0].settings["connecttimeout"] == 1
