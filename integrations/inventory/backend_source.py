"""Inventory imported from backends (issue 19 item 1, issue 20 item 2): the hosts a
patch tool manages (AWX, Satellite, Automox…), listed by its backend's
:meth:`~workflows.backends.BatchBackend.hosts` and merged with the file sources.

A ``PATCHGATE_INVENTORY`` entry ``backend:NAME`` imports backend NAME's hosts with no
options; ``backend:NAME:PATH`` with the options in the YAML mapping at PATH (the same
keys as a plan's ``backends: NAME:`` section, e.g. ``inventory: 3`` for AWX). Each
imported host carries ``patchgate_source: backend:NAME`` in its variables; a host the
tool knows but cannot reach carries ``patchgate_unreachable: <the tool's reason>``
(set by the backend) and is a coverage gap (:func:`tool_gaps`).

Reading a tool is async I/O: :meth:`ToolInventory.load` reads every backend source (in
the caller's event loop, where the backend's HTTP session lives) and keeps the result;
the synchronous :meth:`ToolInventory.hosts` (the Inventory port, called from worker
threads) merges the files with what was last loaded, never doing I/O on a tool itself.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from integrations.inventory.hostvars import HostProblem, os_vars
from integrations.inventory.sources import FileInventory, merge
from workflows.backends import BackendDeclaration, BatchBackend
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

PREFIX = "backend:"
SOURCE_VAR = "patchgate_source"
UNREACHABLE_VAR = "patchgate_unreachable"


@dataclass(frozen=True)
class BackendSource:
    """One ``backend:NAME[:PATH]`` inventory entry."""

    entry: str
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)


def is_backend_entry(entry: str) -> bool:
    return entry.strip().startswith(PREFIX)


def parse_entry(entry: str) -> BackendSource:
    """The backend and options an entry names; InventoryError naming the entry if bad."""
    body = entry.strip()[len(PREFIX) :]
    name, _, path = body.partition(":")
    name = name.strip()
    if not name:
        raise InventoryError(f"{entry}: name a backend (backend:NAME or backend:NAME:OPTIONS.yml)")
    if not path.strip():
        return BackendSource(entry=entry.strip(), backend=name)
    file = Path(path.strip()).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"{entry}: cannot read {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{entry}: {file}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InventoryError(f"{entry}: {file} must hold a mapping of the backend's options")
    return BackendSource(entry=entry.strip(), backend=name, options=dict(data))


async def read_source(
    source: BackendSource, backends: Mapping[str, BackendDeclaration]
) -> list[InventoryHost]:
    """The hosts backend ``source.backend`` lists, each tagged with its source."""
    declaration = backends.get(source.backend)
    if declaration is None:
        known = ", ".join(sorted(backends)) or "none"
        raise InventoryError(
            f"{source.entry}: no backend named {source.backend!r} (known: {known})"
        )
    if not declaration.capabilities(source.options).inventory:
        raise InventoryError(
            f"{source.entry}: backend {source.backend!r} cannot list the hosts it manages "
            "with these options"
        )
    backend: BatchBackend = declaration  # type: ignore[assignment]
    try:
        hosts = await backend.hosts(source.options)
    except InventoryError:
        raise
    except Exception as exc:  # the tool's failure, named, never a crash of the caller
        raise InventoryError(f"{source.entry}: {type(exc).__name__}: {exc}") from exc
    tag = f"{PREFIX}{source.backend}"
    out = []
    for h in hosts:
        try:  # the tool's OS family checked as a file's is (patchgate_os_family)
            checked = os_vars({**h.vars, SOURCE_VAR: tag})
        except HostProblem as exc:
            raise InventoryError(f"{source.entry}: host {h.name}: {exc}") from None
        out.append(replace(h, vars=checked))
    return out


def tool_gaps(hosts: Sequence[InventoryHost]) -> dict[str, str]:
    """Hosts a tool knows but cannot reach: host -> the tool's reason."""
    return {
        h.name: f"{h.vars.get(SOURCE_VAR, 'tool')}: {h.vars[UNREACHABLE_VAR]}"
        for h in hosts
        if h.vars.get(UNREACHABLE_VAR)
    }


class ToolInventory:
    """The Inventory port over file sources and backend sources (see the module)."""

    def __init__(
        self,
        files: FileInventory | None,
        sources: Sequence[BackendSource],
        backends: Mapping[str, BackendDeclaration],
    ) -> None:
        self.files = files
        self.sources = list(sources)
        self.backends = backends
        self._loaded: list[tuple[Path, list[InventoryHost]]] = []
        self._lock = threading.Lock()

    async def load(self) -> None:
        """Read every backend source now (in the caller's event loop)."""
        loaded = [
            (Path(source.entry), await read_source(source, self.backends))
            for source in self.sources
        ]
        with self._lock:
            self._loaded = loaded

    def hosts(self) -> Sequence[InventoryHost]:
        with self._lock:
            loaded = list(self._loaded)
        parts: list[tuple[Path, list[InventoryHost]]] = []
        if self.files is not None:
            parts.append((Path("inventory files"), list(self.files.hosts())))
        return merge([*parts, *loaded])
