"""The hosts an Ansible inventory lists, through ``ansible-inventory --list`` run by
ansible-runner (InventoryConfig), with the same clean environment as playbook runs."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_runner import Runner
from ansible_runner.config.inventory import InventoryConfig
from ansible_runner.exceptions import AnsibleRunnerException

from integrations.backends.ansible.runs import run_environment
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

_SKIP_GROUPS = frozenset({"all", "ungrouped"})


def list_inventory(path: str, scratch: Path) -> dict[str, Any]:
    """ansible-inventory's ``--list`` JSON (its private data dir removed afterwards)."""
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="inventory-", dir=scratch))
    try:
        rc = InventoryConfig(private_data_dir=str(folder), quiet=True)
        try:
            rc.prepare_inventory_command(
                action="list", inventories=[str(Path(path).resolve())], response_format="json"
            )
        except AnsibleRunnerException as exc:
            raise InventoryError(f"ansible-inventory cannot run: {exc}") from exc
        rc.env = run_environment(rc.env, {"ANSIBLE_NOCOLOR": "1"})
        runner = Runner(config=rc, cancel_callback=lambda: False)
        runner.run()
        out = runner.stdout.read() if runner.stdout is not None else ""
        err = runner.stderr.read() if runner.stderr is not None else ""
        if runner.rc != 0:
            raise InventoryError(f"ansible-inventory failed on {path}: {err.strip()[-500:]}")
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise InventoryError(f"ansible-inventory gave no JSON for {path}") from exc
        if not isinstance(data, dict):
            raise InventoryError(f"ansible-inventory gave no inventory for {path}")
        return data
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _groups_of(data: Mapping[str, Any]) -> dict[str, set[str]]:
    """host -> every group it is in (through children too)."""
    members: dict[str, set[str]] = {}

    def walk(group: str, trail: tuple[str, ...]) -> None:
        node = data.get(group) or {}
        if not isinstance(node, Mapping) or group in trail:
            return
        for host in node.get("hosts") or ():
            members.setdefault(str(host), set()).update(g for g in (*trail, group))
        for child in node.get("children") or ():
            walk(str(child), (*trail, group))

    walk("all", ())
    return members


def inventory_hosts(data: Mapping[str, Any]) -> list[InventoryHost]:
    meta = data.get("_meta") or {}
    hostvars = meta.get("hostvars") if isinstance(meta, Mapping) else None
    hostvars = hostvars if isinstance(hostvars, Mapping) else {}
    groups = _groups_of(data)
    names = sorted(set(groups) | set(hostvars))
    hosts: list[InventoryHost] = []
    for name in names:
        hv = hostvars.get(name) or {}
        port = hv.get("ansible_port") or hv.get("ansible_ssh_port") or 22
        user = hv.get("ansible_user") or hv.get("ansible_ssh_user")
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        become = hv.get("ansible_become")
        hosts.append(
            InventoryHost(
                name=name,
                address=str(hv["ansible_host"]) if hv.get("ansible_host") else None,
                port=int(port),
                user=str(user) if user else None,
                groups=frozenset(groups.get(name, set()) - _SKIP_GROUPS),
                private_key_file=str(key) if key else None,
                become=True if become is None else bool(become),
                vars=dict(hv),
            )
        )
    return hosts
