"""Inventory loading: Ansible YAML (children, inheritance, precedence), static YAML, merging."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from integrations.inventory import FileInventory, load_file
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "inventory"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def by_name(hosts: list[InventoryHost] | tuple[InventoryHost, ...]) -> dict[str, InventoryHost]:
    return {h.name: h for h in hosts}


ANSIBLE = """
all:
  vars:
    ansible_user: deploy
    owner: platform
    criticality: low
    level: all
  hosts:
    lonely: {ansible_host: 10.0.0.9}
  children:
    prod:
      vars:
        environment: production
        criticality: high
        level: prod
      children:
        web:
          vars:
            level: web
            patchgate_tags: [frontend]
          hosts:
            web-01:
              ansible_host: 10.0.0.1
              ansible_port: 2222
              internet_facing: true
            web-02:
              ansible_host: 10.0.0.2
              level: host
        db:
          vars:
            criticality: critical
          hosts:
            db-01:
              ansible_host: 10.0.0.3
              ansible_become: false
              patchgate_accept_new_host_key: yes
    dev:
      hosts:
        dev-01:
"""


def test_a_host_is_in_every_ancestor_group_of_the_groups_it_is_listed_in(tmp_path: Path) -> None:
    hosts = by_name(load_file(write(tmp_path, "hosts.yml", ANSIBLE)))
    assert hosts["web-01"].groups == {"web", "prod"}
    assert hosts["db-01"].groups == {"db", "prod"}
    assert hosts["dev-01"].groups == {"dev"}
    assert hosts["lonely"].groups == frozenset()  # only in all (and ungrouped): both left out


def test_child_group_vars_override_parents_and_host_vars_override_groups(tmp_path: Path) -> None:
    hosts = by_name(load_file(write(tmp_path, "hosts.yml", ANSIBLE)))
    assert hosts["web-01"].vars["level"] == "web"
    assert hosts["web-02"].vars["level"] == "host"
    assert hosts["db-01"].vars["level"] == "prod"
    assert hosts["dev-01"].vars["level"] == "all"
    assert hosts["db-01"].criticality == "critical"
    assert hosts["web-01"].criticality == "high"
    assert hosts["dev-01"].criticality == "low"


def test_ansible_and_patchgate_variables_map_to_host_fields(tmp_path: Path) -> None:
    hosts = by_name(load_file(write(tmp_path, "hosts.yml", ANSIBLE)))
    web = hosts["web-01"]
    assert (web.address, web.port, web.user) == ("10.0.0.1", 2222, "deploy")
    assert web.environment == "production"
    assert web.owner == "platform"
    assert web.tags == {"frontend"}
    assert web.internet_facing is True
    assert web.become is True
    db = hosts["db-01"]
    assert db.port == 22
    assert db.become is False
    assert db.accept_new_host_key is True
    assert hosts["dev-01"].address is None
    assert hosts["dev-01"].connect_address == "dev-01"


def test_deeper_groups_win_even_when_a_group_is_declared_twice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hosts.yml",
        """
        all:
          children:
            linux:
              vars: {color: blue}
              children:
                prod:
            prod:
              vars: {color: red}
              hosts:
                h1:
        """,
    )
    [host] = load_file(path)
    assert host.groups == {"linux", "prod"}
    assert host.vars["color"] == "red"  # prod is a child of linux, so it is deeper


def test_group_priority_then_name_orders_groups_of_equal_depth(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hosts.yml",
        """
        alpha:
          vars: {color: alpha}
          hosts: {h1: }
        beta:
          vars: {color: beta}
          hosts: {h1: , h2: }
        gamma:
          vars: {color: gamma, ansible_group_priority: 0}
          hosts: {h2: }
        """,
    )
    hosts = by_name(load_file(path))
    assert hosts["h1"].vars["color"] == "beta"  # same priority: alphabetical, last wins
    assert hosts["h2"].vars["color"] == "beta"  # gamma's lower priority loses


def test_a_cycle_of_groups_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hosts.yml",
        """
        a:
          children:
            b:
              children:
                a:
        """,
    )
    with pytest.raises(InventoryError, match="cycle"):
        load_file(path)


@pytest.mark.parametrize(
    ("host_vars", "message"),
    [
        ("{ansible_port: 70000}", "ansible_port must be a port number"),
        ("{criticality: urgent}", "criticality must be one of"),
        ("{internet_facing: maybe}", "internet_facing must be true or false"),
        ("{ansible_host: '{{ lookup(\"x\") }}'}", "templated"),
    ],
)
def test_bad_host_variables_name_the_file_and_host(
    tmp_path: Path, host_vars: str, message: str
) -> None:
    path = write(tmp_path, "hosts.yml", f"all:\n  hosts:\n    web-01: {host_vars}\n")
    with pytest.raises(InventoryError) as caught:
        load_file(path)
    assert str(caught.value).startswith(f"{path}: host web-01: ")
    assert message in str(caught.value)


def test_host_ranges_expand_to_every_host(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.yml", "all:\n  hosts:\n    web[01:10]:\n")
    assert sorted(h.name for h in load_file(path)) == [f"web{i:02d}" for i in range(1, 11)]


def test_unknown_group_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.yml", "all:\n  host:\n    web-01:\n")
    with pytest.raises(InventoryError, match="unknown key"):
        load_file(path)


# --- static YAML --------------------------------------------------------------------------

STATIC = """
hosts:
  - name: web-01
    address: 10.1.0.1
    port: 2200
    user: admin
    groups: [web, prod]
    tags: [pci]
    environment: production
    owner: team-web
    criticality: high
    internet_facing: true
  - name: db-01
"""


def test_a_static_inventory_is_recognised_by_its_hosts_list(tmp_path: Path) -> None:
    hosts = by_name(load_file(write(tmp_path, "static.yaml", STATIC)))
    assert hosts["web-01"] == InventoryHost(
        name="web-01",
        address="10.1.0.1",
        port=2200,
        user="admin",
        groups=frozenset({"web", "prod"}),
        tags=frozenset({"pci"}),
        environment="production",
        owner="team-web",
        criticality="high",
        internet_facing=True,
    )
    assert hosts["db-01"] == InventoryHost(name="db-01")


def test_a_typo_in_a_static_host_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "static.yml", "hosts:\n  - name: web-01\n    adress: 10.0.0.1\n")
    with pytest.raises(InventoryError, match=r"host web-01: unknown key\(s\) adress"):
        load_file(path)


def test_a_host_listed_twice_in_a_static_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "static.yml", "hosts:\n  - name: a\n  - name: a\n")
    with pytest.raises(InventoryError, match="listed twice"):
        load_file(path)


# --- sources ------------------------------------------------------------------------------


def test_a_directory_source_reads_every_yaml_file_and_skips_vars_directories(
    tmp_path: Path,
) -> None:
    write(tmp_path, "prod.yml", "prod:\n  hosts:\n    p1:\n")
    write(tmp_path, "sub/dev.yaml", "hosts:\n  - name: d1\n")
    write(tmp_path, "group_vars/prod.yml", "ansible_user: x\n")  # not an inventory
    write(tmp_path, "host_vars/p1.yml", "foo: bar\n")
    write(tmp_path, "README.md", "notes")
    names = [h.name for h in FileInventory([tmp_path]).hosts()]
    assert names == ["d1", "p1"]


def test_the_same_host_defined_identically_in_two_sources_is_one_host(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "hosts:\n  - name: web-01\n    address: 10.0.0.1\n")
    b = write(tmp_path, "b.yml", "all:\n  hosts:\n    web-01: {ansible_host: 10.0.0.1}\n")
    [host] = FileInventory([a, b]).hosts()
    assert host.name == "web-01"
    assert host.address == "10.0.0.1"
    assert host.vars == {"ansible_host": "10.0.0.1"}


def test_a_variable_with_two_values_in_two_sources_is_a_conflict(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "all:\n  hosts:\n    web-01: {app_port: 80}\n")
    b = write(tmp_path, "b.yml", "all:\n  hosts:\n    web-01: {app_port: 81}\n")
    with pytest.raises(InventoryError, match=r"differs in: vars\.app_port"):
        FileInventory([a, b]).hosts()


def test_the_same_host_defined_differently_in_two_sources_names_both(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yml", "hosts:\n  - name: web-01\n    address: 10.0.0.1\n")
    b = write(tmp_path, "b.yml", "hosts:\n  - name: web-01\n    address: 10.0.0.2\n")
    with pytest.raises(InventoryError) as caught:
        FileInventory([a, b]).hosts()
    assert str(caught.value) == (
        f"host web-01 is defined differently in {a} and {b} (differs in: address)"
    )


def test_an_unrecognised_file_is_a_clear_error(tmp_path: Path) -> None:
    notes = write(tmp_path, "hosts.cfg", "just some notes, no inventory here\n")
    with pytest.raises(InventoryError, match=r"hosts\.cfg: unrecognised inventory format"):
        FileInventory([notes]).hosts()
    odd = write(tmp_path, "odd.yml", "- a\n- b\n")
    with pytest.raises(InventoryError, match="not an inventory"):
        FileInventory([odd]).hosts()


def test_a_missing_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file or directory"):
        FileInventory([tmp_path / "nope"]).hosts()


def test_invalid_yaml_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.yml", "all:\n  hosts:\n    a: [\n")
    with pytest.raises(InventoryError, match=rf"^{path}:\d+: invalid YAML"):
        load_file(path)


def test_an_edited_inventory_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.yml", "hosts:\n  - name: a\n")
    inventory = FileInventory([path])
    assert [h.name for h in inventory.hosts()] == ["a"]
    path.write_text("hosts:\n  - name: a\n  - name: b\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert [h.name for h in inventory.hosts()] == ["a", "b"]


def test_the_example_inventory_has_dev_staging_and_prod_with_web_and_db_children() -> None:
    hosts = FileInventory([EXAMPLES]).hosts()
    groups = {g for h in hosts for g in h.groups}
    assert {"dev", "staging", "prod", "web", "db"} <= groups
    prod = [h for h in hosts if "prod" in h.groups]
    assert len(prod) == 20
    assert all(h.address and h.address.startswith("127.0.30.") for h in hosts)
    assert any("pci" in h.tags for h in prod)
