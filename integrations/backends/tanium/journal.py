"""PatchGate's local journal of the Patch deployments it created, by job key.

Tanium keeps the key where a person sees it (each deployment's ``name`` and
``description`` carry it), but its public material documents no way to list or look up
deployments: the only call shown creates one (``POST /plugin/products/patch/v2/
deployments``, answering its ``id``). So the key and the deployment ids live here: one
JSON file per key, written (atomically) before the first deployment is created, and
again as each one's id comes back. After a crash ``find(key)`` reads it; an endpoint
whose deployment was sent but not confirmed is never deployed again blindly (see the
backend).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")


@dataclass
class HostDeployment:
    endpoint_id: str
    platform: str
    patches: dict[str, str]  # Tanium UID -> title (the pinned "version")
    deployment_id: str | None = None
    sent: bool = False  # the POST went out (its answer may have been lost)


@dataclass
class Entry:
    key: str
    submitted_at: float
    hosts: dict[str, HostDeployment] = field(default_factory=dict)


class Journal:
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a job key usable as a journal name: {key!r}")
        return self._dir / f"{key}.json"

    def load(self, key: str) -> Entry | None:
        path = self._path(key)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        hosts = {h: HostDeployment(**d) for h, d in data["hosts"].items()}
        return Entry(data["key"], float(data["submitted_at"]), hosts)

    def save(self, entry: Entry) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(entry), indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)
