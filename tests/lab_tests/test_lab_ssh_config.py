"""The user's OpenSSH config on real lab hosts: OpenSSH (``ssh -F config host``) and
PatchGate (``ssh check`` and the executor) reach the same hosts as the same users, through
a two-hop ProxyJump, an Include'd file, wildcard Host blocks, a name that resolves only
through its HostName, and a default key only (HOME with ~/.ssh/id_ed25519); a hop whose
host key is unknown or changed is refused."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integrations.ssh import SshExecutor, SshOptions
from integrations.ssh.check import check
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.sshconfig import (
    endpoint,
    home_with_default_key,
    host_block,
    openssh,
    ssh_agent_with,
    write_known_hosts,
)
from tests.lab_tests.test_lab_engine import hosts
from workflows.errors import HostKeyRejected, HostUnreachable
from workflows.ports import InventoryHost

__all__ = ["hosts"]

# Names that resolve nowhere: only the config's HostName lines make them reachable.
BEHIND = "app-behind.lab.invalid"
DIRECT = "direct-one.lab.invalid"
NAMES = (BEHIND, "bastion-b", DIRECT)
WHO = "echo $(id -un)@$(hostname)"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    config: Path
    known_hosts: Path
    ssh_dir: Path
    bastion_a: LabHost
    bastion_b: LabHost
    target: LabHost


@pytest.fixture
def setup(
    lab: Lab, hosts: list[LabHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    ssh = tmp_path / "home" / ".ssh"
    home_with_default_key(tmp_path / "home", lab.client_key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield write_config_in(ssh, hosts)


def write_config_in(ssh: Path, hosts: list[LabHost], extra: str = "") -> Setup:
    a, b, target = hosts
    known = write_known_hosts(ssh / "lab_known_hosts", [a, b, target])
    conf_d = ssh / "conf.d"
    conf_d.mkdir(exist_ok=True)
    (conf_d / "behind.conf").write_text(
        host_block(BEHIND, **endpoint(target), ProxyJump="bastion-a,bastion-b")
        + host_block("direct-*", Port=a.port, ConnectTimeout=5)
    )
    config = ssh / "config"
    config.write_text(
        f"Include {conf_d}/*.conf\n\n"
        + host_block("bastion-a", **endpoint(a))
        + host_block("bastion-b", **endpoint(b), ProxyJump="bastion-a")
        + host_block(DIRECT, HostName=a.address)
        + extra
        + host_block(
            "*",
            User="patchgate",
            UserKnownHostsFile=known,
            StrictHostKeyChecking="yes",
            ServerAliveInterval=15,
        )
    )
    return Setup(config, known, ssh, a, b, target)


def executor(setup: Setup, tmp_path: Path) -> SshExecutor:
    # PatchGate's own known_hosts is empty: the keys come from the config's
    # UserKnownHostsFile.
    (tmp_path / "empty_known_hosts").write_text("")
    return SshExecutor(
        SshOptions(
            known_hosts=tmp_path / "empty_known_hosts",
            ssh_config=setup.config,
            concurrency=4,
            command_timeout=60,
            connect_timeout=5,
        )
    )


async def test_openssh_and_patchgate_reach_the_same_hosts_as_the_same_users(
    lab: Lab, setup: Setup, tmp_path: Path
) -> None:
    ex = executor(setup, tmp_path)
    try:
        with ssh_agent_with(lab.client_key, tmp_path) as env:
            by_openssh = {}
            for name in NAMES:
                done = openssh(setup.config, name, WHO, env)
                assert done.returncode == 0, (name, done.stderr)
                by_openssh[name] = done.stdout.strip()
        by_patchgate = {}
        for name in NAMES:
            out = await ex.run_argv(InventoryHost(name=name), ["sh", "-c", WHO], 30)
            assert out.exit_code == 0, (name, out.stderr)
            by_patchgate[name] = out.stdout.strip()
        reports = {name: await check(ex, InventoryHost(name=name)) for name in NAMES}
    finally:
        ex.close()
    assert (
        by_patchgate
        == by_openssh
        == {
            BEHIND: f"patchgate@{setup.target.name}",
            "bastion-b": f"patchgate@{setup.bastion_b.name}",
            DIRECT: f"patchgate@{setup.bastion_a.name}",
        }
    )
    behind = reports[BEHIND]
    assert behind.ok and behind.result.startswith("`uname -sr`: Linux")
    assert [h.label for h in behind.hops] == ["bastion-a", "bastion-b", BEHIND]
    target = behind.hops[-1]
    assert target.settings["hostname"] == setup.target.address
    assert target.sources["hostname"] == f"config {setup.ssh_dir}/conf.d/behind.conf:2"
    assert target.sources["user"].startswith(f"config {setup.config}:")
    assert target.sources["identityfile"] == "default identities"
    assert any("id_ed25519 (ssh-ed25519" in k for k in target.keys)
    assert all(h.host_key.startswith("known (ssh-ed25519") for h in behind.hops)
    direct = reports[DIRECT]
    assert direct.hops[-1].sources["port"] == f"config {setup.ssh_dir}/conf.d/behind.conf:7"


async def test_the_two_hop_route_really_goes_through_the_second_hop(
    lab: Lab, setup: Setup, tmp_path: Path
) -> None:
    ex = executor(setup, tmp_path)
    setup.bastion_b.stop_sshd()
    try:
        with pytest.raises(HostUnreachable, match="jump host bastion-b"):
            await ex.facts(InventoryHost(name=BEHIND))
        with ssh_agent_with(lab.client_key, tmp_path) as env:
            assert openssh(setup.config, BEHIND, "true", env).returncode != 0
        # The same host straight from the inventory (ansible_host), no jump: reached.
        direct = InventoryHost(name="target", address=setup.target.address, port=setup.target.port)
        assert (await ex.facts(direct)).boot_id == setup.target.boot_id()
    finally:
        setup.bastion_b.start_sshd()
        ex.close()


@pytest.mark.parametrize("how", ["unknown", "changed"])
async def test_a_hop_with_an_unknown_or_changed_host_key_is_refused(
    lab: Lab, setup: Setup, tmp_path: Path, how: str
) -> None:
    a, b, target = setup.bastion_a, setup.bastion_b, setup.target
    if how == "unknown":
        write_known_hosts(setup.known_hosts, [a, target])  # bastion-b missing
    else:
        write_known_hosts(setup.known_hosts, [a, target])
        with setup.known_hosts.open("a") as kh:
            kh.write(b.known_hosts_line.replace(b.host_key_pub, a.host_key_pub) + "\n")
    ex = executor(setup, tmp_path)
    try:
        word = "unknown host key" if how == "unknown" else "host key CHANGED"
        with pytest.raises(HostKeyRejected, match=f"{word}.*jump host bastion-b"):
            # The target opting in to new keys does not extend to its jump hosts.
            await ex.facts(InventoryHost(name=BEHIND, accept_new_host_key=True))
        report = await check(ex, InventoryHost(name=BEHIND))
    finally:
        ex.close()
    assert not report.ok
    assert report.hops[0].host_key.startswith("known")
    assert report.hops[1].host_key.startswith("unknown" if how == "unknown" else "CHANGED")
    with ssh_agent_with(lab.client_key, tmp_path) as env:
        assert openssh(setup.config, BEHIND, "true", env).returncode != 0


async def test_the_inventory_wins_over_the_config_and_weakening_options_are_ignored_loudly(
    lab: Lab,
    hosts: list[LabHost],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ssh = tmp_path / "home" / ".ssh"
    home_with_default_key(tmp_path / "home", lab.client_key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # A config that would send the host elsewhere, as another user, trusting any key.
    extra = host_block("lax", HostName="192.0.2.1") + host_block(
        f"lax {hosts[2].address}",
        User="nobody",
        Port=2,
        StrictHostKeyChecking="no",
        ProxyCommand="nc %h %p",
    )
    setup = write_config_in(ssh, hosts, extra=extra)
    ex = executor(setup, tmp_path)
    inv = InventoryHost(
        name="lax",
        address=setup.target.address,  # ansible_host: what the config is looked up by
        port=setup.target.port,
        user="patchgate",
        vars={
            "ansible_host": setup.target.address,
            "ansible_port": setup.target.port,
            "ansible_user": "patchgate",
        },
    )
    try:
        with caplog.at_level(logging.WARNING):
            assert (await ex.facts(inv)).boot_id == setup.target.boot_id()
            lax = InventoryHost(name="lax")
            with pytest.raises(HostUnreachable):
                await ex.facts(lax)  # 192.0.2.1:2 from the config: unreachable, no ProxyCommand
        report = await check(ex, inv)
    finally:
        ex.close()
    assert report.ok
    assert report.hops[-1].sources["user"] == "inventory ansible_user"
    assert report.hops[-1].sources["port"] == "inventory ansible_port"
    assert report.hops[-1].sources["hostname"] == "inventory ansible_host"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lax: StrictHostKeyChecking no" in w for w in warnings)
    assert any("lax: ProxyCommand" in w for w in warnings)


def test_the_ssh_check_command_reports_the_route_as_openssh_takes_it(
    setup: Setup, tmp_path: Path
) -> None:
    (tmp_path / "empty_known_hosts").write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATCHGATE_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "PATCHGATE_SSH_CONFIG": str(setup.config),
        "PATCHGATE_SSH_KNOWN_HOSTS": str(tmp_path / "empty_known_hosts"),
    }

    def patchgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli.main", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert patchgate("db", "upgrade").returncode == 0
    done = patchgate("ssh", "check", "--bare", "--json", BEHIND, DIRECT)
    assert done.returncode == 0, done.stdout + done.stderr
    behind, direct = json.loads(done.stdout)
    assert behind["jump_chain"] == ["bastion-a", "bastion-b"] and behind["ok"]
    assert [h["settings"]["user"] for h in behind["hops"]] == ["patchgate"] * 3
    assert direct["jump_chain"] == [] and direct["ok"]
    text = patchgate("ssh", "check", "--bare", BEHIND)
    assert text.returncode == 0
    assert f"route: bastion-a -> bastion-b -> {BEHIND}" in text.stdout
    assert "result: `uname -sr`: Linux" in text.stdout
