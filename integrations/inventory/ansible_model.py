"""Ansible's inventory model, shared by the YAML and INI formats.

A format parser fills an :class:`AnsibleInventory` (groups with their variables, direct
hosts and children; hosts with their own variables); :meth:`AnsibleInventory.hosts`
resolves it the way ``ansible-inventory --list`` does:

* a host belongs to every group it is listed in and every ancestor of those; a host in
  no group but ``all`` is in ``ungrouped``;
* groups are ordered by (depth, ``ansible_group_priority``, name), depth being the
  longest path from ``all``;
* variables are combined in Ansible's default precedence (``VARIABLE_PRECEDENCE``):
  ``all``'s inventory vars, the other groups' inventory vars in group order,
  ``group_vars/all``, ``group_vars/<group>`` in group order, the host's inventory vars,
  ``host_vars/<host>``. Each layer replaces top-level keys (Ansible's default
  ``hash_behaviour``).

``group_vars/`` and ``host_vars/`` are read beside the inventory file (or inside an
inventory directory) by :mod:`integrations.inventory.vardirs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integrations.inventory.hostvars import HostProblem, host_from_vars, problem
from integrations.inventory.ranges import expand, split_port
from workflows.ports import InventoryHost

MAX_GROUP_DEPTH = 100
"""Groups nested (``children:``, ``[x:children]``) deeper than this are refused: the
walks over the group graph recurse, and no honest inventory comes near it."""


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)  # ordered set
    children: dict[str, None] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)


class AnsibleInventory:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.groups: dict[str, Group] = {
            "all": Group("all"),
            "ungrouped": Group("ungrouped", parents={"all"}),
        }
        self.groups["all"].children["ungrouped"] = None
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_groups: dict[str, set[str]] = {}

    # --- building -------------------------------------------------------------------------

    def group(self, name: object) -> Group:
        if not isinstance(name, str) or not name:
            raise problem(self.source, None, f"group name {name!r} must be a non-empty string")
        if name not in self.groups:
            self.groups[name] = Group(name)
        return self.groups[name]

    def add_child(self, parent: str, child: str) -> None:
        if child == "all":
            raise problem(self.source, None, f"group {parent}: 'all' cannot be a child")
        self.group(parent).children[child] = None
        self.group(child).parents.add(parent)

    def add_hosts(
        self, group: Group, pattern: object, variables: Mapping[str, Any] | None
    ) -> list[str]:
        """Add the hosts a pattern (``web[01:03]:2222``) stands for to ``group``."""
        text, port = split_port(str(pattern))
        try:
            names = expand(text)
        except HostProblem as exc:
            raise problem(self.source, None, f"group {group.name}: {exc}") from None
        for name in names:
            merged = self.host_vars.setdefault(name, {})
            if port is not None:
                merged["ansible_port"] = port
            merged.update(variables or {})
            self.host_groups.setdefault(name, set())
            if group.name != "all":
                self.host_groups[name].add(group.name)
            group.hosts[name] = None
        return names

    # --- resolution -----------------------------------------------------------------------

    def _finish(self) -> None:
        """Ansible's reconcile step: groups without a parent become children of ``all``;
        hosts in no group but ``all`` go to ``ungrouped``."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name)
        for name, direct in self.host_groups.items():
            if not direct - {"ungrouped"}:
                direct.add("ungrouped")
                self.groups["ungrouped"].hosts[name] = None
            else:
                self.groups["ungrouped"].hosts.pop(name, None)
                direct.discard("ungrouped")
        for name in self.host_groups:
            self.groups["all"].hosts.pop(name, None)

    def depths(self) -> dict[str, int]:
        """Longest distance from ``all`` (Ansible's group depth); refuses cycles and
        nesting past :data:`MAX_GROUP_DEPTH`."""
        depth: dict[str, int] = {}
        visiting: set[str] = set()

        def walk(name: str, trail: tuple[str, ...]) -> int:
            if name in depth:
                return depth[name]
            if name in visiting:
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                raise problem(self.source, None, f"groups form a cycle: {cycle}")
            if len(trail) >= MAX_GROUP_DEPTH:
                raise problem(
                    self.source,
                    None,
                    f"groups nested deeper than {MAX_GROUP_DEPTH} levels "
                    f"(... {' -> '.join((*trail[-3:], name))} ...)",
                )
            visiting.add(name)
            parents = self.groups[name].parents
            deepest = max((walk(p, (*trail, name)) for p in parents), default=-1)
            value = 0 if name == "all" else 1 + deepest
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

    def structure(self) -> dict[str, dict[str, list[str]]]:
        """Each group's direct hosts and children, as ``ansible-inventory --list`` shows."""
        self._finish()
        return {
            name: {"hosts": sorted(g.hosts), "children": sorted(g.children)}
            for name, g in self.groups.items()
        }

    def hosts(
        self,
        group_files: Mapping[str, Mapping[str, Any]] | None = None,
        host_files: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[InventoryHost]:
        """Resolve every host; ``group_files``/``host_files`` come from group_vars/host_vars."""
        self._finish()
        group_files = group_files or {}
        host_files = host_files or {}
        depth = self.depths()  # also refuses cycles before ancestors() recurses
        ancestors = self.ancestors()

        def priority(name: str) -> int:
            value = self.groups[name].vars.get("ansible_group_priority", 1)
            if isinstance(value, str) and value.isdigit():
                return int(value)
            return value if isinstance(value, int) and not isinstance(value, bool) else 1

        order_cache: dict[frozenset[str], list[str]] = {}
        result = []
        for name, direct in self.host_groups.items():
            key = frozenset(direct)
            ordered = order_cache.get(key)
            if ordered is None:
                groups: set[str] = set()
                for group in direct:
                    groups |= ancestors[group]
                groups.discard("all")
                ordered = sorted(groups, key=lambda g: (depth[g], priority(g), g))
                order_cache[key] = ordered
            variables: dict[str, Any] = dict(self.groups["all"].vars)
            for group in ordered:
                variables.update(self.groups[group].vars)
            variables.update(group_files.get("all", {}))
            for group in ordered:
                variables.update(group_files.get(group, {}))
            variables.update(self.host_vars[name])
            variables.update(host_files.get(name, {}))
            try:
                result.append(host_from_vars(name, ordered, variables))
            except HostProblem as exc:
                raise problem(self.source, name, str(exc)) from None
        return result
