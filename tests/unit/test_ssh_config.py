"""The user's OpenSSH config read as OpenSSH reads it, merged with the inventory as
Ansible merges them (integrations/ssh/sshconfig.py), without a network."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from integrations.ssh.sshconfig import OpenSshConfig, route
from workflows.errors import InputError
from workflows.ports import InventoryHost


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh" / "conf.d").mkdir(parents=True)
    return tmp_path / ".ssh"


def config(home: Path, text: str) -> OpenSshConfig:
    (home / "config").write_text(text)
    return OpenSshConfig(home / "config")


def test_relative_includes_are_read_from_dot_ssh_with_globs(home: Path) -> None:
    (home / "conf.d" / "a.conf").write_text("Host web-*\n    User deploy\n")
    (home / "conf.d" / "b.conf").write_text("Host web-1\n    HostName 10.0.0.1\n")
    cfg = config(home, "Include conf.d/*.conf\nHost *\n    User fallback\n    Port 2222\n")
    target = route(InventoryHost(name="web-1"), cfg, explain=True).target
    assert (target.address, target.user, target.port) == ("10.0.0.1", "deploy", 2222)
    assert target.sources["user"] == f"config {home}/conf.d/a.conf:2"
    assert target.sources["hostname"] == f"config {home}/conf.d/b.conf:2"
    assert target.sources["port"] == f"config {home}/config:4"


def test_match_host_blocks_apply_as_in_openssh(home: Path) -> None:
    cfg = config(home, "Match host db-*\n    User dba\nHost *\n    User other\n")
    assert route(InventoryHost(name="db-3"), cfg).target.user == "dba"
    assert route(InventoryHost(name="app-3"), cfg).target.user == "other"


def test_inventory_values_win_and_the_config_is_looked_up_by_ansible_host(home: Path) -> None:
    cfg = config(
        home,
        "Host 10.0.0.9\n    User cfg\n    Port 2200\n    IdentityFile ~/.ssh/cfg_key\n"
        "Host web-1\n    HostName 10.9.9.9\n",
    )
    host = InventoryHost(
        name="web-1",
        address="10.0.0.9",
        port=22,
        user="inv",
        private_key_file="/keys/inv",
        vars={"ansible_host": "10.0.0.9", "ansible_port": 22, "ansible_user": "inv"},
    )
    target = route(host, cfg, explain=True).target
    assert (target.address, target.user, target.port) == ("10.0.0.9", "inv", 22)
    assert target.identity_files == ("/keys/inv", f"{home}/cfg_key")  # the inventory's first
    assert target.sources["port"] == "inventory ansible_port"
    assert target.sources["hostname"] == "inventory ansible_host"


def test_proxyjump_chains_resolve_every_hop_through_the_config(home: Path) -> None:
    cfg = config(
        home,
        "Host edge\n    HostName 203.0.113.1\n    User jumper\n    HostKeyAlias edge-key\n"
        "Host inner\n    HostName 10.1.0.1\n    Port 2201\n"
        "Host app\n    HostName 10.2.0.5\n    ProxyJump edge,ops@inner\n",
    )
    path = route(InventoryHost(name="app", user="deploy"), cfg)
    edge, inner = path.jumps
    assert (edge.address, edge.user, edge.port, edge.host_key_name) == (
        "203.0.113.1",
        "jumper",
        22,
        "edge-key",
    )
    assert (inner.address, inner.user, inner.port, inner.host_key_name) == (
        "10.1.0.1",
        "ops",
        2201,
        "[10.1.0.1]:2201",
    )
    assert path.target.address == "10.2.0.5" and path.target.user == "deploy"
    # The inventory's jump host replaces the config's chain; "none" in the config: none.
    assert len(route(InventoryHost(name="app", jump_host="b1,b2"), cfg).jumps) == 2


def test_default_identities_are_offered_only_without_an_identity_file(home: Path) -> None:
    cfg = config(home, "Host keyed\n    IdentityFile ~/.ssh/k1\n    IdentityFile ~/.ssh/k2\n")
    keyed = route(InventoryHost(name="keyed"), cfg).target
    bare = route(InventoryHost(name="bare"), cfg).target
    assert keyed.identity_files == (f"{home}/k1", f"{home}/k2") and not keyed.default_identities
    assert bare.identity_files == tuple(f"{home}/{n}" for n in ("id_rsa", "id_ecdsa", "id_ed25519"))
    assert bare.default_identities and bare.user == getpass.getuser()


def test_options_that_weaken_host_keys_or_proxying_are_warned_about_by_host(home: Path) -> None:
    cfg = config(home, "Host lax\n    StrictHostKeyChecking no\n    ProxyCommand nc %h %p\n")
    warnings = route(InventoryHost(name="lax"), cfg).warnings
    assert len(warnings) == 2
    assert "lax: StrictHostKeyChecking no" in warnings[0]
    assert "lax: ProxyCommand" in warnings[1]
    assert route(InventoryHost(name="other"), cfg).warnings == ()


def test_connection_options_are_read(home: Path) -> None:
    cfg = config(
        home,
        "Host t\n    ConnectTimeout 7\n    ServerAliveInterval 30\n    IdentitiesOnly yes\n"
        "    UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2\n",
    )
    target = route(InventoryHost(name="t"), cfg).target
    assert target.connect_timeout == 7 and target.server_alive_interval == 30
    assert target.identities_only
    assert target.known_hosts_files == (f"{home}/kh1", f"{home}/kh2")


def test_no_config_file_or_none_means_openssh_defaults(tmp_path: Path) -> None:
    for cfg in (OpenSshConfig(None), OpenSshConfig(tmp_path / "missing")):
        target = route(InventoryHost(name="h", port=2222), cfg).target
        assert (target.address, target.port) == ("h", 2222)


@pytest.mark.parametrize("spec", ["bastion:0", "bastion:99999", "ops@", ":22"])
def test_a_malformed_hop_is_an_input_error(spec: str) -> None:
    with pytest.raises(InputError, match="jump host"):
        route(InventoryHost(name="x", jump_host=spec), OpenSshConfig(None))


def test_the_first_hops_own_proxyjump_is_followed_as_openssh_does(home: Path) -> None:
    cfg = config(
        home,
        "Host inner\n    HostName 10.1.0.1\n    ProxyJump edge\n"
        "Host app\n    HostName 10.2.0.5\n    ProxyJump inner\n"
        "Host loop\n    ProxyJump loop\n",
    )
    assert [h.label for h in route(InventoryHost(name="app"), cfg).jumps] == ["edge", "inner"]
    with pytest.raises(InputError, match="loops"):
        route(InventoryHost(name="x", jump_host="loop"), cfg)
