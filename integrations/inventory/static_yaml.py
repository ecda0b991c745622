"""PatchGate's static YAML inventory: a flat list of hosts with their attributes.

::

    hosts:
      - name: web-01
        address: 10.0.0.1
        port: 22
        user: deploy
        groups: [web, prod]
        tags: [pci]
        environment: production
        owner: team-web
        criticality: high
        internet_facing: true

Also accepted per host: ``private_key_file``, ``become``, ``jump_host``,
``accept_new_host_key`` and ``vars`` (a mapping kept in ``InventoryHost.vars``).
Unknown keys are errors, so a typo is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.inventory.hostvars import (
    HostProblem,
    as_bool,
    as_criticality,
    as_names,
    as_port,
    as_text,
    check_host_name,
    os_vars,
    problem,
)
from workflows.ports import InventoryHost

_HOST_KEYS = frozenset(
    {
        "name",
        "address",
        "port",
        "user",
        "groups",
        "tags",
        "environment",
        "owner",
        "criticality",
        "internet_facing",
        "private_key_file",
        "become",
        "jump_host",
        "accept_new_host_key",
        "vars",
    }
)


def looks_like_static(data: object) -> bool:
    """A top-level ``hosts:`` list."""
    return isinstance(data, Mapping) and isinstance(data.get("hosts"), list)


def _host(entry: Mapping[str, Any]) -> InventoryHost:
    unknown = set(entry) - _HOST_KEYS
    if unknown:
        raise HostProblem(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    extra = entry.get("vars") or {}
    if not isinstance(extra, Mapping):
        raise HostProblem("vars must be a mapping")
    return InventoryHost(
        name=check_host_name(entry.get("name")),
        address=as_text("address", entry.get("address")),
        port=as_port("port", entry.get("port")),
        user=as_text("user", entry.get("user")),
        groups=as_names("groups", entry.get("groups")) - {"all", "ungrouped"},
        tags=as_names("tags", entry.get("tags")),
        environment=as_text("environment", entry.get("environment")),
        owner=as_text("owner", entry.get("owner")),
        criticality=as_criticality("criticality", entry.get("criticality")),
        internet_facing=as_bool("internet_facing", entry.get("internet_facing"), default=False),
        private_key_file=as_text("private_key_file", entry.get("private_key_file")),
        become=as_bool("become", entry.get("become"), default=True),
        jump_host=as_text("jump_host", entry.get("jump_host")),
        accept_new_host_key=as_bool(
            "accept_new_host_key", entry.get("accept_new_host_key"), default=False
        ),
        vars=os_vars(extra),
    )


def parse_static_yaml(data: Mapping[str, Any], *, source: object) -> list[InventoryHost]:
    """Hosts of a static YAML inventory already read into plain Python."""
    unknown = set(data) - {"hosts"}
    if unknown:
        raise problem(
            source,
            None,
            f"unknown top-level key(s) {', '.join(sorted(map(str, unknown)))} "
            "(a static inventory has only hosts:)",
        )
    hosts: dict[str, InventoryHost] = {}
    for index, entry in enumerate(data["hosts"]):
        label = entry.get("name") if isinstance(entry, Mapping) else None
        where = str(label) if label is not None else f"hosts[{index}]"
        if not isinstance(entry, Mapping):
            raise problem(source, None, f"hosts[{index}] must be a mapping, got {entry!r}")
        try:
            host = _host(entry)
        except HostProblem as exc:
            raise problem(source, where, str(exc)) from None
        if host.name in hosts:
            raise problem(source, host.name, "listed twice")
        hosts[host.name] = host
    return list(hosts.values())
