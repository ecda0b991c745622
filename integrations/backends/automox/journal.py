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

from dataclasses import asdict, dataclass, field
from pathlib import Path

from integrations.backends.keyfiles import KeyFiles


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
        self._files = KeyFiles(directory)

    def load(self, key: str) -> Entry | None:
        data = self._files.read(key)
        if data is None:
            return None
        devices = {h: DeviceCommand(**d) for h, d in data["devices"].items()}
        return Entry(data["key"], data["action"], float(data["submitted_at"]), devices)

    def save(self, entry: Entry) -> None:
        body = {**asdict(entry), "devices": {h: asdict(d) for h, d in entry.devices.items()}}
        self._files.write(entry.key, body)
