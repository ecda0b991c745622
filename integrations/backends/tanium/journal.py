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

from dataclasses import asdict, dataclass, field
from pathlib import Path

from integrations.backends.keyfiles import KeyFiles


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
        self._files = KeyFiles(directory)

    def load(self, key: str) -> Entry | None:
        data = self._files.read(key)
        if data is None:
            return None
        hosts = {h: HostDeployment(**d) for h, d in data["hosts"].items()}
        return Entry(data["key"], float(data["submitted_at"]), hosts)

    def save(self, entry: Entry) -> None:
        self._files.write(entry.key, asdict(entry))
