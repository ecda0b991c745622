"""PatchGate's local journal of the deployments it created, by job key.

A deployment of the Windows Update for Business deployment service has no field for
free text: its properties are ``content``, ``settings``, ``state``, ``audience`` and
two timestamps (no display name, description or tag), and its audience has none either.
So the key lives here, as for Automox: one JSON file per key, written (atomically)
before anything is created and again after each step (the devices enrolled, each
deployment created, its audience filled). After a crash ``find(key)`` reads it and the
steps not confirmed are done then, never twice: a deployment whose creation was not
confirmed is looked for among the deployments created since the intent was written,
by its catalog entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from integrations.backends.keyfiles import KeyFiles


@dataclass
class Target:
    device_id: str  # Intune's managed device id
    aad_id: str  # the updatable asset (Microsoft Entra device id)
    kb: str
    build: str  # the build the update brings it to


@dataclass
class Rollout:
    """One deployment: one catalog entry to the devices that need it."""

    entry_id: str
    expedite: bool
    hosts: dict[str, Target]
    deployment_id: str | None = None
    audience_id: str | None = None
    members_added: bool = False
    refused: str | None = None  # Graph refused to create it on a resumed job: why


@dataclass
class Entry:
    key: str
    submitted_at: float
    created_after: str  # ISO time: a lost creation is looked for from here
    deployments: list[Rollout] = field(default_factory=list)
    enrolled: bool = False
    halted: bool = False  # halt() came first: a deployment not created yet never will be

    @property
    def ids(self) -> str:
        return ",".join(d.deployment_id or "?" for d in self.deployments)


class Journal:
    def __init__(self, directory: Path) -> None:
        self._files = KeyFiles(directory)

    def load(self, key: str) -> Entry | None:
        data = self._files.read(key)
        if data is None:
            return None
        deployments = [
            Rollout(**{**d, "hosts": {h: Target(**t) for h, t in d["hosts"].items()}})
            for d in data.pop("deployments")
        ]
        return Entry(**data, deployments=deployments)

    def save(self, entry: Entry) -> None:
        self._files.write(entry.key, asdict(entry))
