"""PatchGate's local journal of the device commands it queued, by job key.

Automox keeps nothing PatchGate could put a key into: a device command has only
``command_type_name`` and ``args`` (the patch names), and no note, tag or description
field is documented. So the key lives here: one JSON file per key, written (atomically)
before the first command is queued and again as each device's command is confirmed.
After a crash ``find(key)`` reads it; a device whose command was never confirmed is
looked up in the device's queue (``GET /servers/{id}/queues``) by type and arguments,
never queued a second time.
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
class DeviceCommand:
    device_id: int
    command_type_name: str
    args: str | None
    packages: dict[str, str | None] = field(default_factory=dict)
    command_id: int | None = None
    queued: bool = False  # Automox answered the POST (or the queue listed it)


@dataclass
class Entry:
    key: str
    action: str
    submitted_at: float
    devices: dict[str, DeviceCommand]  # host name -> its command


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
        devices = {h: DeviceCommand(**d) for h, d in data["devices"].items()}
        return Entry(data["key"], data["action"], float(data["submitted_at"]), devices)

    def save(self, entry: Entry) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.key)
        tmp = path.with_suffix(".tmp")
        body = {**asdict(entry), "devices": {h: asdict(d) for h, d in entry.devices.items()}}
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)
