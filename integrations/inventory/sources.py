"""Inventory sources: files and directories, one loader per format, merged by host name.

A source is a file or a directory. A directory contributes every file inside it (and
below it) whose extension has a loader, skipping ``group_vars/``, ``host_vars/`` and
hidden entries. A file's format is chosen by extension, then by content: YAML is
PatchGate's static format when it has a top-level ``hosts:`` list, else Ansible's.

Adding a format (INI, CSV...) is a new module with a ``load(path) -> list[InventoryHost]``
function and one :func:`register_format` call in :data:`FORMATS` below.

Sources are merged by host name. The same host defined identically twice is one host;
defined differently, it is an error naming both files (never silently resolved).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import yaml

from integrations.inventory.ansible_yaml import looks_like_ansible, parse_ansible_yaml
from integrations.inventory.hostvars import problem
from integrations.inventory.static_yaml import looks_like_static, parse_static_yaml
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

Loader = Callable[[Path], list[InventoryHost]]

_SKIP_DIRS = frozenset({"group_vars", "host_vars"})
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with PyYAML's C loader when available (large inventories)."""
    try:
        with path.open("rb") as stream:
            return yaml.load(stream, Loader=_YAML_LOADER)  # a safe loader (C or Python)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        detail = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{where}: invalid YAML: {detail}") from None


def load_yaml(path: Path) -> list[InventoryHost]:
    data = read_yaml(path)
    if data is None:
        return []
    if looks_like_static(data):
        return parse_static_yaml(data, source=path)
    if looks_like_ansible(data):
        return parse_ansible_yaml(data, source=path)
    raise problem(
        path,
        None,
        "not an inventory: expected a top-level hosts: list (static format) or "
        "group mappings like all: (Ansible format)",
    )


FORMATS: dict[str, Loader] = {}


def register_format(suffixes: Sequence[str], loader: Loader) -> None:
    for suffix in suffixes:
        FORMATS[suffix.lower()] = loader


register_format([".yml", ".yaml"], load_yaml)


def source_files(source: Path) -> list[Path]:
    """The files a source stands for, in a stable order."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise InventoryError(f"{source}: no such inventory file or directory")
    found: list[Path] = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            path = Path(root, name)
            if not name.startswith(".") and path.suffix.lower() in FORMATS:
                found.append(path)
    return found


def load_file(path: Path) -> list[InventoryHost]:
    loader = FORMATS.get(path.suffix.lower())
    if loader is None:
        known = ", ".join(sorted(FORMATS))
        raise InventoryError(
            f"{path}: unrecognised inventory format {path.suffix or '(no extension)'!r} "
            f"(known: {known})"
        )
    return loader(path)


def _differences(a: InventoryHost, b: InventoryHost) -> list[str]:
    """Fields in which two definitions disagree; ``vars`` only on keys both define."""
    fields_ = [
        f.name
        for f in fields(InventoryHost)
        if f.name != "vars" and getattr(a, f.name) != getattr(b, f.name)
    ]
    fields_ += [f"vars.{k}" for k in sorted(set(a.vars) & set(b.vars)) if a.vars[k] != b.vars[k]]
    return fields_


def merge(loaded: Iterable[tuple[Path, list[InventoryHost]]]) -> list[InventoryHost]:
    """Merge hosts from several files by name; conflicting definitions are errors.

    Two definitions agree when every attribute is equal and no variable has two values;
    their variables are then united (an Ansible file's ``ansible_host`` and a static
    file's ``address`` for the same host are the same definition).
    """
    hosts: dict[str, tuple[InventoryHost, Path]] = {}
    conflicts: list[str] = []
    for path, items in loaded:
        for host in items:
            seen = hosts.get(host.name)
            if seen is None:
                hosts[host.name] = (host, path)
                continue
            differences = _differences(seen[0], host)
            if differences:
                conflicts.append(
                    f"host {host.name} is defined differently in {seen[1]} and {path} "
                    f"(differs in: {', '.join(differences)})"
                )
            elif set(host.vars) - set(seen[0].vars):
                hosts[host.name] = (replace(seen[0], vars={**seen[0].vars, **host.vars}), seen[1])
    if conflicts:
        raise InventoryError("\n".join(conflicts))
    return [hosts[name][0] for name in sorted(hosts)]


class FileInventory:
    """The Inventory port over inventory files and directories.

    Files are read on first use and again whenever one of them changes (checked by
    modification time and size on each call), so an edited inventory is picked up by
    the next rollout without a restart.
    """

    def __init__(self, sources: Sequence[Path]) -> None:
        self.sources = [Path(s) for s in sources]
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._hosts: list[InventoryHost] = []

    def _files(self) -> list[Path]:
        files: list[Path] = []
        for source in self.sources:
            files.extend(source_files(source))
        return files

    def hosts(self) -> Sequence[InventoryHost]:
        files = self._files()
        signature = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size) for p in files)
        if signature != self._signature:
            self._hosts = merge((path, load_file(path)) for path in files)
            self._signature = signature
        return list(self._hosts)

    def refresh(self) -> Sequence[InventoryHost]:
        """Read every source again now."""
        self._signature = None
        return self.hosts()
