"""Parity with Ansible: PatchGate reads the same hosts, groups and variables as
``ansible-inventory -i FILE --list`` (ansible-core from the dev extra) on every
inventory under tests/fixtures/inventory/, several of them examples from Ansible's
documentation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integrations.inventory import FileInventory
from integrations.inventory.hostvars import READ_VARS
from integrations.inventory.sources import parse_ansible_file
from workflows.ports import InventoryHost

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventory"
CASES = sorted(
    p
    for d in FIXTURES.iterdir()
    if d.is_dir()
    for p in d.iterdir()
    if p.is_file() and not p.name.startswith(".")
)


def _ansible_inventory() -> str:
    beside = Path(sys.executable).parent / "ansible-inventory"
    found = str(beside) if beside.exists() else shutil.which("ansible-inventory")
    assert found, "ansible-inventory not found: pip install -e '.[dev]' installs ansible-core"
    return found


@pytest.fixture(scope="module")
def ansible_lists(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, dict[str, Any]]:
    """Every fixture listed by ansible-inventory, the processes run side by side."""
    cwd = tmp_path_factory.mktemp("ansible-cwd")
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(cwd),
        "ANSIBLE_HOME": str(cwd),
        "ANSIBLE_CONFIG": str(cwd / "none.cfg"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    }
    tool = _ansible_inventory()
    procs = {
        case: subprocess.Popen(
            [tool, "-i", str(case), "--list"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case in CASES
    }
    lists = {}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"ansible-inventory failed on {case}: {err}"
        lists[case] = json.loads(out)
    return lists


def _ansible_groups_of(listing: dict[str, Any]) -> dict[str, set[str]]:
    """host -> every group it is in (with ancestors), from ansible-inventory's tree."""
    parents: dict[str, set[str]] = {}
    for name, body in listing.items():
        for child in body.get("children", []) if name != "_meta" else []:
            parents.setdefault(child, set()).add(name)

    def up(group: str) -> set[str]:
        found = {group}
        for parent in parents.get(group, ()):
            found |= up(parent)
        return found

    membership: dict[str, set[str]] = {}
    for name, body in listing.items():
        if name == "_meta":
            continue
        for host in body.get("hosts", []):
            membership.setdefault(host, set()).update(up(name))
    return membership


def _ids(case: Path) -> str:
    return f"{case.parent.name}/{case.name}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_patchgate_reads_the_hosts_groups_and_variables_ansible_reads(
    case: Path, ansible_lists: dict[Path, dict[str, Any]]
) -> None:
    listing = ansible_lists[case]
    hostvars: dict[str, dict[str, Any]] = listing["_meta"]["hostvars"]
    membership = _ansible_groups_of(listing)
    hosts: dict[str, InventoryHost] = {h.name: h for h in FileInventory([case]).hosts()}

    assert set(hosts) == set(membership)
    for name, host in hosts.items():
        theirs = hostvars.get(name, {})
        assert host.groups == membership[name] - {"all", "ungrouped"}, name
        for key in READ_VARS:
            assert host.vars.get(key) == theirs.get(key), (name, key)
        assert host.address == theirs.get("ansible_host"), name
        assert host.port == int(theirs.get("ansible_port", 22)), name
        assert host.user == theirs.get("ansible_user"), name


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_patchgate_sees_the_same_group_tree_as_ansible(
    case: Path, ansible_lists: dict[Path, dict[str, Any]]
) -> None:
    listing = ansible_lists[case]
    model = parse_ansible_file(case)
    assert model is not None
    ours = {
        name: {k: v for k, v in body.items() if v}
        for name, body in model.structure().items()
        if name != "all"
    }
    theirs = {
        name: {k: sorted(v) for k, v in body.items() if v}
        for name, body in listing.items()
        if name not in ("_meta", "all")
    }
    assert {n: b for n, b in ours.items() if b} == {n: b for n, b in theirs.items() if b}
    assert sorted(listing["all"].get("children", [])) == model.structure()["all"]["children"]


def test_the_fixtures_cover_ranges_group_vars_host_vars_and_ini() -> None:
    names = {_ids(c) for c in CASES}
    wanted = {"docs_ranges/hosts.yml", "patchgate_dirs/inventory.yml", "patchgate_ini/hosts.ini"}
    assert wanted <= names
    assert (FIXTURES / "patchgate_dirs" / "group_vars" / "web").is_dir()
