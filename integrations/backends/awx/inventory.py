"""The hosts of an AWX inventory as :class:`InventoryHost` values (``hosts()``).

Calls: ``GET inventories/{id}/hosts/`` (every page), ``GET inventories/{id}/groups/`` and,
per group, ``GET groups/{id}/all_hosts/`` (a group's hosts including those of its child
groups, as Ansible counts membership). Disabled hosts are left out: AWX does not run jobs
on them. Variables (AWX keeps them as JSON or YAML text) are merged as Ansible would for
a flat inventory: the groups' variables (by group name), then the host's own; AWX's id for
the host is ``awx_host_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from integrations.backends.awx.client import AwxClient
from integrations.inventory.hostvars import HostProblem, host_from_vars, problem
from workflows.errors import InventoryError
from workflows.ports import InventoryHost


def parse_variables(text: Any, *, where: str) -> dict[str, Any]:
    """AWX's ``variables``/``extra_vars`` text (JSON or YAML) as a mapping."""
    if isinstance(text, Mapping):
        return dict(text)
    if text in (None, ""):
        return {}
    try:
        value = yaml.safe_load(str(text))
    except yaml.YAMLError as exc:
        raise InventoryError(f"{where}: variables are neither JSON nor YAML ({exc})") from exc
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where}: variables must be a mapping")
    return dict(value)


async def inventory_hosts(client: AwxClient, inventory: int) -> list[InventoryHost]:
    source = f"AWX inventory {inventory}"
    groups_of: dict[str, list[str]] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    async for group in client.pages(f"inventories/{inventory}/groups/"):
        name = str(group["name"])
        group_vars[name] = parse_variables(group.get("variables"), where=f"{source}: group {name}")
        async for member in client.pages(f"groups/{group['id']}/all_hosts/"):
            groups_of.setdefault(str(member["name"]), []).append(name)
    hosts: list[InventoryHost] = []
    async for item in client.pages(f"inventories/{inventory}/hosts/"):
        name = str(item["name"])
        if item.get("enabled") is False:
            continue
        merged: dict[str, Any] = {}
        groups = sorted(set(groups_of.get(name, ())))
        for group_name in groups:
            merged.update(group_vars.get(group_name, {}))
        merged.update(parse_variables(item.get("variables"), where=f"{source}: host {name}"))
        merged["awx_host_id"] = item.get("id")  # the tool's id for the host
        try:
            hosts.append(host_from_vars(name, groups, merged))
        except HostProblem as exc:
            raise problem(source, name, str(exc)) from exc
    return hosts
