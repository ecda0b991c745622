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

from dataclasses import dataclass, field

from integrations.backends.keyfiles import JobEntry


@dataclass
class DeviceCommand:
    device_id: int
    command_type_name: str
    args: str | None
    packages: dict[str, str | None] = field(default_factory=dict)
    command_id: int | None = None
    queued: bool = False  # Automox answered the POST (or the queue listed it)


Entry = JobEntry[DeviceCommand]
