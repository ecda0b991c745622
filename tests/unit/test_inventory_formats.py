"""Inventory formats beyond the foundation: INI, host ranges, group_vars/host_vars,
!vault values, ProxyJump, CSV with a column mapping, recognition by content."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from integrations.inventory import FileInventory, load_file
from integrations.inventory.csv_inventory import parse_mapping
from integrations.inventory.hostvars import HostProblem, jump_from_ssh_args
from integrations.inventory.ranges import expand, split_port
from workflows.errors import InventoryError
from workflows.ports import InventoryHost


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def by_name(hosts: list[InventoryHost] | tuple[InventoryHost, ...]) -> dict[str, InventoryHost]:
    return {h.name: h for h in hosts}


def test_ranges_expand_numbers_with_width_letters_steps_and_several_ranges() -> None:
    assert expand("web[01:03].example.com") == [f"web0{i}.example.com" for i in (1, 2, 3)]
    assert expand("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand("n[1:9:4]") == ["n1", "n5", "n9"]
    assert expand("r[1:2]c[a:b]") == ["r1ca", "r1cb", "r2ca", "r2cb"]
    assert split_port("web[01:03]:2222") == ("web[01:03]", 2222)
    assert split_port("web[01:03]") == ("web[01:03]", None)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("w[01:3]", "same length"), ("w[c:a]", "begin must not"), ("w[1:]", "end value")],
)
def test_bad_ranges_say_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(HostProblem, match=message):
        expand(pattern)


def test_an_ini_inventory_types_values_like_ansible_and_inherits_group_vars(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "hosts",
        """
        lone
        [web]
        web[1:2] ansible_port=2200 criticality=high
        [web:vars]
        internet_facing=yes
        [prod:children]
        web
        [prod:vars]
        environment=production
        """,
    )
    hosts = by_name(load_file(path))
    assert hosts["web1"].port == 2200 and hosts["web1"].vars["ansible_port"] == 2200
    assert hosts["web2"].groups == {"web", "prod"}
    assert hosts["web2"].internet_facing and hosts["web2"].environment == "production"
    assert hosts["lone"].groups == frozenset()


def test_ini_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "[web]\nweb-01\n[prod:children]\nweb\nmissing\n")
    with pytest.raises(InventoryError, match=r"hosts\.ini:5: .*'missing', which is declared"):
        load_file(path)
    bad = write(tmp_path, "bad.ini", "[web]\nweb-01 port\n")
    with pytest.raises(InventoryError, match=r"bad\.ini:2: expected key=value"):
        load_file(bad)


def test_group_vars_and_host_vars_beside_the_inventory_follow_ansible_precedence(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "inv.yml",
        """
        all:
          vars: {owner: from-all}
          children:
            web:
              vars: {owner: from-web-inline, criticality: low}
              hosts: {web-01: {}, web-02: {criticality: medium}}
        """,
    )
    write(tmp_path, "group_vars/all.yml", "owner: from-group-vars-all\n")
    write(tmp_path, "group_vars/web/a.yml", "criticality: high\n")
    write(tmp_path, "host_vars/web-02.yaml", "criticality: critical\n")
    hosts = by_name(load_file(path))
    # group_vars/all beats every group's inline vars (Ansible's VARIABLE_PRECEDENCE)
    assert hosts["web-01"].owner == "from-group-vars-all"
    assert hosts["web-01"].criticality == "high"
    assert hosts["web-02"].criticality == "critical"


def test_an_edited_group_vars_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.yml", "web:\n  hosts:\n    web-01:\n")
    gv = write(tmp_path, "group_vars/web.yml", "owner: a\n")
    inventory = FileInventory([path])
    assert inventory.hosts()[0].owner == "a"
    gv.write_text("owner: someone-else\n")
    assert inventory.hosts()[0].owner == "someone-else"


def test_a_vaulted_value_patchgate_reads_is_a_located_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.yml",
        """
        all:
          hosts:
            db-01:
              ansible_become_password: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                6331
              ansible_user: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                3939
        """,
    )
    with pytest.raises(InventoryError) as caught:
        load_file(path)
    text = str(caught.value)
    assert "host db-01" in text and "ansible_user is encrypted with ansible-vault" in text
    assert f"{path}:7" in text and "does not decrypt" in text


def test_a_vaulted_value_patchgate_does_not_read_is_kept_as_a_marker(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "inv.yml",
        "all:\n  hosts:\n    db-01:\n      ansible_become_password: !vault |\n        x\n",
    )
    (host,) = load_file(path)
    assert str(host.vars["ansible_become_password"]) == f"<vaulted at {path}:4>"


@pytest.mark.parametrize(
    ("args", "jump"),
    [
        ("-o ProxyJump=ops@bastion:2200", "ops@bastion:2200"),
        ("-o StrictHostKeyChecking=no -J bastion", "bastion"),
        ("-oProxyJump=ssh://b.example.com", "b.example.com"),
        ("-o 'ProxyJump b2'", "b2"),
        ("-o ServerAliveInterval=5", None),
    ],
)
def test_the_jump_host_comes_from_proxyjump_in_ssh_common_args(args: str, jump: str | None) -> None:
    assert jump_from_ssh_args(args) == jump


def test_a_jump_chain_or_proxycommand_is_refused_clearly() -> None:
    with pytest.raises(HostProblem, match="takes one"):
        jump_from_ssh_args("-J a,b")
    with pytest.raises(HostProblem, match="ProxyCommand"):
        jump_from_ssh_args("-o ProxyCommand='ssh -W %h:%p b'")


def test_a_csv_export_is_read_through_the_column_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cmdb.csv",
        """
        hostname,ip,support_group,crit,exposed,location
        web-01,10.0.0.1,web;prod,High,Yes,eu-1
        db-01,10.0.0.2,db,critical,no,eu-2
        """,
    )
    columns = parse_mapping(
        "name=hostname,address=ip,groups=support_group,criticality=crit,internet_facing=exposed"
    )
    hosts = by_name(FileInventory([path], csv_columns=columns).hosts())
    assert hosts["web-01"].groups == {"web", "prod"} and hosts["web-01"].criticality == "high"
    assert hosts["web-01"].internet_facing and not hosts["db-01"].internet_facing
    assert hosts["db-01"].address == "10.0.0.2" and hosts["db-01"].vars == {"location": "eu-2"}


def test_csv_problems_name_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cmdb.csv", "name,criticality\nweb-01,high\nweb-02,urgent\n")
    with pytest.raises(InventoryError, match=r"cmdb\.csv:3: host web-02: criticality must be"):
        FileInventory([path]).hosts()
    nameless = write(tmp_path, "other.csv", "host,ip\nweb-01,1.2.3.4\n")
    with pytest.raises(InventoryError, match="no 'name' column"):
        FileInventory([nameless]).hosts()
    with pytest.raises(ValueError, match="not a host field"):
        parse_mapping("hostname=name")


def test_a_file_without_a_known_extension_is_recognised_by_content(tmp_path: Path) -> None:
    ini = write(tmp_path, "a/hosts", "[web]\nweb-01\n")
    yml = write(tmp_path, "b/inventory", "web:\n  hosts:\n    web-02:\n")
    assert [h.name for h in FileInventory([ini, yml]).hosts()] == ["web-01", "web-02"]


def test_the_same_host_from_ini_and_csv_with_different_values_is_a_reported_conflict(
    tmp_path: Path,
) -> None:
    ini = write(tmp_path, "hosts.ini", "[web]\nweb-01 criticality=low\n")
    csv = write(tmp_path, "cmdb.csv", "name,criticality,groups\nweb-01,high,web\n")
    with pytest.raises(InventoryError, match=r"web-01 is defined differently.*criticality"):
        FileInventory([ini, csv]).hosts()
