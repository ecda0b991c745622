"""CSV inventories (a CMDB export): one host per row, columns mapped to host fields.

The mapping (``PATCHGATE_INVENTORY_CSV_COLUMNS``, ``field=Column`` pairs) names the
column holding each field; a field not mapped is read from the column of its own name
when there is one. Fields: ``name`` (required), ``address``, ``port``, ``user``,
``groups``, ``tags`` (lists separated by ``;`` or ``,``), ``environment``, ``owner``,
``criticality``, ``internet_facing``, ``jump_host``, ``private_key_file``. Every other
column is kept in the host's ``vars`` under its header. Errors name the file and line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from integrations.inventory.bounds import check_size
from integrations.inventory.hostvars import (
    HostProblem,
    as_bool,
    as_criticality,
    as_names,
    as_port,
    as_text,
    check_host_name,
    os_vars,
)
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

FIELDS = (
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
    "jump_host",
    "private_key_file",
)
_LIST_SPLIT = re.compile(r"[;,]")


def parse_mapping(text: str) -> dict[str, str]:
    """``name=hostname,address=ip`` -> {field: column}; unknown fields are errors."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        field, eq, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not eq or not column:
            raise ValueError(f"{item!r} is not of the form field=Column")
        if field not in FIELDS:
            raise ValueError(f"{field!r} is not a host field ({', '.join(FIELDS)})")
        mapping[field] = column
    return mapping


def _names(key: str, value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return as_names(key, [p.strip() for p in _LIST_SPLIT.split(value) if p.strip()])


def _host(row: Mapping[str, str | None], columns: Mapping[str, str]) -> InventoryHost:
    def get(field: str) -> str | None:
        value = row.get(columns.get(field, field))
        return value.strip() or None if isinstance(value, str) else None

    used = {columns.get(f, f) for f in FIELDS}
    extra: dict[str, Any] = {k: v for k, v in row.items() if k not in used and k is not None}
    return InventoryHost(
        name=check_host_name(get("name")),
        address=as_text("address", get("address")),
        port=as_port("port", get("port")),
        user=as_text("user", get("user")),
        groups=_names("groups", get("groups")) - {"all", "ungrouped"},
        tags=_names("tags", get("tags")),
        environment=as_text("environment", get("environment")),
        owner=as_text("owner", get("owner")),
        criticality=as_criticality("criticality", get("criticality")),
        internet_facing=as_bool("internet_facing", get("internet_facing"), default=False),
        jump_host=as_text("jump_host", get("jump_host")),
        private_key_file=as_text("private_key_file", get("private_key_file")),
        vars=os_vars(extra),
    )


def load_csv(path: Path, columns: Mapping[str, str]) -> list[InventoryHost]:
    check_size(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.DictReader(stream)
            header = reader.fieldnames or []
            name_column = columns.get("name", "name")
            if name_column not in header:
                raise InventoryError(
                    f"{path}:1: no {name_column!r} column for the host name "
                    f"(columns: {', '.join(header) or 'none'}; map it with "
                    "PATCHGATE_INVENTORY_CSV_COLUMNS=name=COLUMN)"
                )
            hosts: dict[str, InventoryHost] = {}
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise InventoryError(f"{path}:{line}: more cells than columns")
                if not any((v or "").strip() for v in row.values()):
                    continue
                try:
                    host = _host(row, columns)
                except HostProblem as exc:
                    label = row.get(name_column) or "?"
                    raise InventoryError(f"{path}:{line}: host {label}: {exc}") from None
                if host.name in hosts:
                    raise InventoryError(f"{path}:{line}: host {host.name} is listed twice")
                hosts[host.name] = host
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: invalid CSV: {exc}") from None
    return list(hosts.values())


def csv_loader(columns: Mapping[str, str]) -> Callable[[Path], list[InventoryHost]]:
    return lambda path: load_csv(path, columns)
