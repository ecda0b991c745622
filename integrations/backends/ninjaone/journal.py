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

from dataclasses import dataclass, field
from typing import Any

from integrations.backends.keyfiles import JobEntry


@dataclass
class DeviceApply:
    device_id: int
    patches: dict[str, str | None] = field(default_factory=dict)  # the pinned identities
    posted: bool = False  # NinjaOne answered 204 to the apply
    scanned: bool = False  # the scan after the result was posted
    result: dict[str, Any] | None = None  # the final outcome (status, output, after, ...)


Entry = JobEntry[DeviceApply]
