"""PatchGate's local journal of the patch applies it started, by job key.

NinjaOne keeps nothing PatchGate could put a key into: ``POST /v2/device/{id}/patch/os/
apply`` takes no body and answers 204 without a job id, and no note, tag or description
field is documented for it. So the key lives here: one JSON file per key, written
(atomically) before the first apply is posted, and again as each device's apply is
confirmed and its result is read. After a crash ``find(key)`` reads it and ``follow``
goes on from it; a device whose apply was never confirmed is posted again by ``follow``
(safe: the apply installs the device's approved patches, which ``submit`` checked are
exactly the pinned ones, so a second apply installs nothing more).
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
class DeviceApply:
    device_id: int
    patches: dict[str, str | None] = field(default_factory=dict)  # the pinned identities
    posted: bool = False  # NinjaOne answered 204 to the apply
    scanned: bool = False  # the scan after the result was posted
    result: dict[str, Any] | None = None  # the final outcome (status, output, after, ...)


@dataclass
class Entry:
    key: str
    action: str
    submitted_at: float  # epoch seconds: install records before it are not this job's
    devices: dict[str, DeviceApply]  # host name -> its apply


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
        devices = {h: DeviceApply(**d) for h, d in data["devices"].items()}
        return Entry(data["key"], data["action"], float(data["submitted_at"]), devices)

    def save(self, entry: Entry) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.key)
        tmp = path.with_suffix(".tmp")
        body = {**asdict(entry), "devices": {h: asdict(d) for h, d in entry.devices.items()}}
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)
