"""Inventory sources: files and directories, one loader per format, merged by host name.

A source is a file or a directory. A directory contributes every file inside it (and
below it) whose extension has a loader, skipping ``group_vars/``, ``host_vars/`` and
hidden entries. A file's format is chosen by extension, then by content: YAML is
PatchGate's static format when it has a top-level ``hosts:`` list, else Ansible's.

Formats: Ansible YAML and INI (with ``group_vars/`` and ``host_vars/`` beside the
file), PatchGate's static YAML and CSV. A file with another extension (Ansible's
extensionless ``hosts``) is recognised by content, and one that is none of these is a
clear error. Adding a format is a new module with a ``load(path) -> list[InventoryHost]``
function and one :func:`register_format` call below.

``!vault`` values are never decrypted: one in a variable PatchGate reads is an error
naming the host, the variable, the file and the line; others are kept as a marker.

Sources are merged by host name. The same host defined identically twice is one host;
defined differently, it is an error naming both files (never silently resolved).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.nodes import ScalarNode

from integrations.inventory.ansible_ini import looks_like_ini, parse_ansible_ini
from integrations.inventory.ansible_model import AnsibleInventory
from integrations.inventory.ansible_yaml import looks_like_ansible, parse_ansible_yaml
from integrations.inventory.bounds import check_graph, check_size
from integrations.inventory.csv_inventory import csv_loader
from integrations.inventory.fastyaml import construct
from integrations.inventory.hostvars import Vaulted, problem
from integrations.inventory.static_yaml import looks_like_static, parse_static_yaml
from integrations.inventory.vardirs import load_vars_dir
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

Loader = Callable[[Path], list[InventoryHost]]

_SKIP_DIRS = frozenset({"group_vars", "host_vars"})
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# First characters for which the safe loader has implicit resolvers (bool, int, float,
# null, timestamp, merge, value); a plain scalar starting otherwise is a string.
_IMPLICIT_FIRST = frozenset(k for k in _YAML_LOADER.yaml_implicit_resolvers if k is not None)
_STR_TAG = "tag:yaml.org,2002:str"


def _fast_resolve(self: Any, kind: Any, value: Any, implicit: Any) -> Any:
    """PyYAML's resolve with a shortcut for the common case: a plain scalar whose first
    character no implicit resolver looks at, or a quoted one, is a string."""
    if (
        kind is ScalarNode
        and value
        and (not implicit[0] or value[0] not in _IMPLICIT_FIRST)
        and None not in self.yaml_implicit_resolvers
        and not self.yaml_path_resolvers
    ):
        return _STR_TAG
    return _YAML_LOADER.resolve(self, kind, value, implicit)


def _loader(path: Path) -> Any:
    """A safe loader (C when available) that turns ``!vault`` into a located marker."""

    class Loader(_YAML_LOADER):  # type: ignore[misc]
        resolve = _fast_resolve

    def vaulted(loader: Any, node: Any) -> Vaulted:
        return Vaulted(str(path), node.start_mark.line + 1)

    Loader.add_constructor("!vault", vaulted)
    return Loader


def load_yaml_text(stream: Any, path: Path) -> Any:
    """``yaml.load`` with the safe loader (C when available): composed in C, plain
    mappings/sequences/strings built by :mod:`fastyaml`, everything else by PyYAML."""
    size = len(stream) if isinstance(stream, (str, bytes)) else _size(path)
    loader = _loader(path)(stream)
    try:
        node = loader.get_single_node()
        check_graph(node, path, size)  # before anything is built: no alias blow-up
        return construct(node, loader)
    finally:
        loader.dispose()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with PyYAML's C loader when available (large inventories)."""
    check_size(path)
    try:
        with path.open("rb") as stream:
            return load_yaml_text(stream, path)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        detail = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{where}: invalid YAML: {detail}") from None
    except (ValueError, TypeError) as exc:  # a tagged value PyYAML cannot build (!!int x)
        raise InventoryError(f"{path}: invalid YAML value: {exc}") from None


def resolve_ansible(inv: AnsibleInventory, base: Path) -> list[InventoryHost]:
    """Hosts of an Ansible inventory, with ``group_vars/`` and ``host_vars/`` under ``base``."""
    group_files = load_vars_dir(base, "group_vars", inv.groups, read_yaml)
    host_files = load_vars_dir(base, "host_vars", inv.host_groups, read_yaml)
    return inv.hosts(group_files, host_files)


def _vars_base(path: Path, root: Path | None) -> Path:
    return root if root is not None else path.parent


def parse_ansible_file(path: Path) -> AnsibleInventory | None:
    """The Ansible model of a YAML or INI inventory file (None for other formats)."""
    if path.suffix.lower() in (".yml", ".yaml"):
        data = read_yaml(path)
        return parse_ansible_yaml(data, source=path) if looks_like_ansible(data) else None
    text = _read_text(path)
    if looks_like_ini(text) or not text.strip():
        return parse_ansible_ini(text, source=path)
    return None


def _read_text(path: Path) -> str:
    check_size(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InventoryError(
            f"{path}: not a text file (an inventory is YAML, INI or CSV)"
        ) from None


def load_yaml(path: Path, root: Path | None = None) -> list[InventoryHost]:
    data = read_yaml(path)
    if data is None:
        return []
    if looks_like_static(data):
        return parse_static_yaml(data, source=path)
    if looks_like_ansible(data):
        return resolve_ansible(parse_ansible_yaml(data, source=path), _vars_base(path, root))
    raise problem(
        path,
        None,
        "not an inventory: expected a top-level hosts: list (static format) or "
        "group mappings like all: (Ansible format)",
    )


def load_ini(path: Path, root: Path | None = None) -> list[InventoryHost]:
    inv = parse_ansible_ini(_read_text(path), source=path)
    return resolve_ansible(inv, _vars_base(path, root))


def load_by_content(path: Path, root: Path | None = None) -> list[InventoryHost]:
    """A file whose extension names no format: YAML, then INI, else a clear error."""
    text = _read_text(path)
    if looks_like_ini(text):
        return load_ini(path, root)
    try:
        data = load_yaml_text(text, path)
    except (yaml.YAMLError, ValueError, TypeError):
        data = None
    if isinstance(data, dict) and (looks_like_static(data) or looks_like_ansible(data)):
        return load_yaml(path, root)
    raise InventoryError(
        f"{path}: unrecognised inventory format: not Ansible YAML or INI, static YAML or CSV "
        f"(known extensions: {', '.join(sorted(FORMATS))})"
    )


FORMATS: dict[str, Loader] = {}


def register_format(suffixes: Sequence[str], loader: Loader) -> None:
    for suffix in suffixes:
        FORMATS[suffix.lower()] = loader


register_format([".yml", ".yaml"], load_yaml)
register_format([".ini", ".hosts"], load_ini)
register_format([".csv"], csv_loader({}))


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


def load_file(
    path: Path, *, formats: dict[str, Loader] | None = None, root: Path | None = None
) -> list[InventoryHost]:
    """Hosts of one file; ``root`` is the inventory directory it was found in, if any."""
    loader = (formats or FORMATS).get(path.suffix.lower())
    if loader is None:
        return load_by_content(path, root)
    if loader in (load_yaml, load_ini):
        return cast(Callable[[Path, Path | None], list[InventoryHost]], loader)(path, root)
    return loader(path)


def _in_vars(path: Path) -> bool:
    return any(part in _SKIP_DIRS for part in path.parts[:-1])


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
    the next rollout without a restart. ``serve`` reads it from worker threads, so the
    check and the read are serialised: two callers never parse at once, and the hosts
    kept always belong to the signature kept with them.
    """

    def __init__(
        self, sources: Sequence[Path], *, csv_columns: Mapping[str, str] | None = None
    ) -> None:
        self.sources = [Path(s) for s in sources]
        self.formats = {**FORMATS, ".csv": csv_loader(csv_columns or {})}
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._hosts: list[InventoryHost] = []
        self._lock = threading.Lock()

    def _files(self) -> list[tuple[Path, Path | None]]:
        files: list[tuple[Path, Path | None]] = []
        for source in self.sources:
            root = source if source.is_dir() else None
            files.extend((path, root) for path in source_files(source))
            for base in [root or source.parent]:
                for kind in _SKIP_DIRS:  # edits to group_vars/host_vars count too
                    if (base / kind).is_dir():
                        files.extend((p, None) for p in sorted((base / kind).rglob("*")))
        return files

    def hosts(self) -> Sequence[InventoryHost]:
        with self._lock:
            files = self._files()
            signature = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size) for p, _ in files)
            if signature != self._signature:
                self._hosts = merge(
                    (path, load_file(path, formats=self.formats, root=root))
                    for path, root in files
                    if path.parent.name not in _SKIP_DIRS and path.is_file() and not _in_vars(path)
                )
                self._signature = signature
            return list(self._hosts)

    def refresh(self) -> Sequence[InventoryHost]:
        """Read every source again now."""
        with self._lock:
            self._signature = None
        return self.hosts()
