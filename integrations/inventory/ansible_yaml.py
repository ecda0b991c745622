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
                web-01: {ansible_host: 10.0.0.1}

Semantics follow Ansible's: top-level keys are groups (children of ``all``); a group
may be mentioned several times and its mentions are merged; a host belongs to every
group it is listed in and every ancestor of those. Variables: ``all`` first, then the
host's groups sorted by (depth, ``ansible_group_priority``, name), so a child group
overrides its parents; host variables override every group variable.

Host ranges (``web[01:20]``) are not supported yet and are refused with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.inventory.hostvars import HostProblem, host_from_vars, problem
from workflows.ports import InventoryHost

_GROUP_KEYS = frozenset({"hosts", "vars", "children"})
_RANGE = re.compile(r"\[[^\]]*:[^\]]*\]")
_HOST_PORT = re.compile(r"^([^:\[\]]+):(\d+)$")


@dataclass
class _Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)  # ordered set
    children: dict[str, None] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)


def looks_like_ansible(data: object) -> bool:
    """Top-level group mappings (``all:``, ``prod:``...), each a mapping or empty."""
    return (
        isinstance(data, Mapping)
        and bool(data)
        and all(isinstance(v, Mapping) or v is None for v in data.values())
    )


class _Parser:
    def __init__(self, source: object) -> None:
        self.source = source
        self.groups: dict[str, _Group] = {"all": _Group("all")}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_groups: dict[str, set[str]] = {}

    def group(self, name: object) -> _Group:
        if not isinstance(name, str) or not name:
            raise problem(self.source, None, f"group name {name!r} must be a non-empty string")
        if name not in self.groups:
            self.groups[name] = _Group(name)
        return self.groups[name]

    def visit(self, name: object, body: object, parent: str | None) -> None:
        group = self.group(name)
        if parent is not None and group.name != "all":
            group.parents.add(parent)
            self.groups[parent].children[group.name] = None
        if body is None:
            return
        if not isinstance(body, Mapping):
            raise problem(
                self.source, None, f"group {group.name}: expected a mapping, got {body!r}"
            )
        unknown = set(body) - _GROUP_KEYS
        if unknown:
            raise problem(
                self.source,
                None,
                f"group {group.name}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                "(a group has hosts:, vars: and children:)",
            )
        group_vars = body.get("vars")
        if group_vars is not None:
            if not isinstance(group_vars, Mapping):
                raise problem(self.source, None, f"group {group.name}: vars must be a mapping")
            group.vars.update(group_vars)
        hosts = body.get("hosts")
        if hosts is not None:
            if not isinstance(hosts, Mapping):
                raise problem(
                    self.source,
                    None,
                    f"group {group.name}: hosts must be a mapping of host name to variables",
                )
            for host_name, variables in hosts.items():
                self.add_host(group, host_name, variables)
        children = body.get("children")
        if children is not None:
            if not isinstance(children, Mapping):
                raise problem(
                    self.source, None, f"group {group.name}: children must be a mapping of groups"
                )
            for child_name, child_body in children.items():
                if child_name == "all":
                    raise problem(self.source, None, f"group {group.name}: 'all' cannot be a child")
                self.visit(child_name, child_body, group.name)

    def add_host(self, group: _Group, name: object, variables: object) -> None:
        text = str(name)
        if _RANGE.search(text):
            raise problem(
                self.source, text, "host ranges like web[01:20] are not supported yet; list hosts"
            )
        port: int | None = None
        match = _HOST_PORT.match(text)
        if match:
            text, port = match.group(1), int(match.group(2))
        if variables is not None and not isinstance(variables, Mapping):
            raise problem(self.source, text, f"host variables must be a mapping, got {variables!r}")
        merged = self.host_vars.setdefault(text, {})
        if port is not None:
            merged.setdefault("ansible_port", port)
        merged.update(variables or {})
        self.host_groups.setdefault(text, set()).add(group.name)
        group.hosts[text] = None

    # --- resolution -----------------------------------------------------------------------

    def depths(self) -> dict[str, int]:
        """Longest distance from ``all`` (Ansible's group depth); refuses cycles."""
        depth: dict[str, int] = {}
        visiting: set[str] = set()

        def walk(name: str, trail: tuple[str, ...]) -> int:
            if name in depth:
                return depth[name]
            if name in visiting:
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                raise problem(self.source, None, f"groups form a cycle: {cycle}")
            visiting.add(name)
            parents = self.groups[name].parents - {"all"}
            value = (
                0
                if name == "all"
                else 1 + max((walk(p, (*trail, name)) for p in parents), default=0)
            )
            visiting.discard(name)
            depth[name] = value
            return value

        for name in self.groups:
            walk(name, ())
        return depth

    def ancestors(self) -> dict[str, frozenset[str]]:
        memo: dict[str, frozenset[str]] = {}

        def up(name: str) -> frozenset[str]:
            if name not in memo:
                found = {name}
                for parent in self.groups[name].parents:
                    found |= up(parent)
                memo[name] = frozenset(found)
            return memo[name]

        return {name: up(name) for name in self.groups}

    def hosts(self) -> list[InventoryHost]:
        depth = self.depths()  # also refuses cycles before ancestors() recurses
        ancestors = self.ancestors()

        def priority(name: str) -> int:
            value = self.groups[name].vars.get("ansible_group_priority", 1)
            return value if isinstance(value, int) and not isinstance(value, bool) else 1

        result = []
        for name, direct in self.host_groups.items():
            groups: set[str] = {"all"}
            for group in direct:
                groups |= ancestors[group]
            ordered = sorted(groups, key=lambda g: (depth[g], priority(g), g))
            variables: dict[str, Any] = {}
            for group in ordered:
                variables.update(self.groups[group].vars)
            variables.update(self.host_vars[name])
            try:
                result.append(host_from_vars(name, groups, variables))
            except HostProblem as exc:
                raise problem(self.source, name, str(exc)) from None
        return result


def parse_ansible_yaml(data: Mapping[str, Any], *, source: object) -> list[InventoryHost]:
    """Hosts of an Ansible YAML inventory already read into plain Python."""
    parser = _Parser(source)
    for name, body in data.items():
        parser.visit(name, body, None if name == "all" else "all")
    return parser.hosts()
