"""Ansible's YAML inventory format.

::

    all:
      vars: {ansible_user: deploy}
      children:
        prod:
          vars: {environment: production}
          children:
            web:
              hosts:
                web[01:20].example.com: {ansible_host: 10.0.0.1}

Semantics follow Ansible's (see :mod:`integrations.inventory.ansible_model`): top-level
keys are groups; a group may be mentioned several times and its mentions are merged;
host names may carry a port (``db-01:2222``) and ranges (``web[01:20]``, ``[a:c]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from integrations.inventory.ansible_model import AnsibleInventory
from integrations.inventory.hostvars import problem

_GROUP_KEYS = frozenset({"hosts", "vars", "children"})


def looks_like_ansible(data: object) -> bool:
    """Top-level group mappings (``all:``, ``prod:``...), each a mapping or empty."""
    return (
        isinstance(data, Mapping)
        and bool(data)
        and all(isinstance(v, Mapping) or v is None for v in data.values())
    )


def _visit(inv: AnsibleInventory, name: object, body: object, parent: str | None) -> None:
    source = inv.source
    group = inv.group(name)
    if parent is not None:
        inv.add_child(parent, group.name)
    if body is None:
        return
    if not isinstance(body, Mapping):
        raise problem(source, None, f"group {group.name}: expected a mapping, got {body!r}")
    unknown = set(body) - _GROUP_KEYS
    if unknown:
        raise problem(
            source,
            None,
            f"group {group.name}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
            "(a group has hosts:, vars: and children:)",
        )
    group_vars = body.get("vars")
    if group_vars is not None:
        if not isinstance(group_vars, Mapping):
            raise problem(source, None, f"group {group.name}: vars must be a mapping")
        group.vars.update(group_vars)
    hosts = body.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, Mapping):
            raise problem(
                source,
                None,
                f"group {group.name}: hosts must be a mapping of host name to variables",
            )
        for pattern, variables in hosts.items():
            if variables is not None and not isinstance(variables, Mapping):
                raise problem(
                    source, str(pattern), f"host variables must be a mapping, got {variables!r}"
                )
            inv.add_hosts(group, pattern, variables)
    children = body.get("children")
    if children is not None:
        if not isinstance(children, Mapping):
            raise problem(source, None, f"group {group.name}: children must be a mapping of groups")
        for child_name, child_body in children.items():
            if child_name == "all":
                raise problem(source, None, f"group {group.name}: 'all' cannot be a child")
            _visit(inv, child_name, child_body, group.name)


def parse_ansible_yaml(data: Mapping[str, Any], *, source: Path) -> AnsibleInventory:
    """The inventory model of an Ansible YAML inventory already read into plain Python."""
    inv = AnsibleInventory(source)
    for name, body in data.items():
        _visit(inv, name, body, None)
    return inv
