"""``group_vars/`` and ``host_vars/`` beside an Ansible inventory (Ansible's
``host_group_vars`` plugin): for a name, the first of ``NAME``, ``NAME.yml``,
``NAME.yaml``, ``NAME.json`` that exists; a directory ``NAME/`` contributes every file
below it (sorted, hidden files skipped), later files overriding earlier ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from workflows.errors import InventoryError

_EXTENSIONS = ("", ".yml", ".yaml", ".json")

ReadYaml = Callable[[Path], Any]


def _dir_files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in _EXTENSIONS:
                found.append(Path(root, name))
    return found


def _read(read_yaml: ReadYaml, path: Path) -> dict[str, Any]:
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InventoryError(f"{path}: variables must be a mapping of name to value")
    return dict(data)


def load_vars_dir(
    base: Path, kind: str, names: Iterable[str], read_yaml: ReadYaml
) -> dict[str, dict[str, Any]]:
    """Variables from ``base/kind/`` (kind is ``group_vars`` or ``host_vars``) per name."""
    directory = base / kind
    if not directory.is_dir():
        return {}
    entries = {entry.name: entry for entry in os.scandir(directory)}
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        for ext in _EXTENSIONS:
            entry = entries.get(name + ext)
            if entry is None:
                continue
            merged: dict[str, Any] = {}
            files = _dir_files(Path(entry.path)) if entry.is_dir() else [Path(entry.path)]
            for path in files:
                merged.update(_read(read_yaml, path))
            result[name] = merged
            break
    return result
