"""The local journal of the backends whose tool keeps nothing PatchGate could put its key
into (Automox's device commands, NinjaOne's patch applies): one JSON document per job
key, written atomically (a temporary file, then a rename), so a crash leaves the previous
version or the new one, never half of one. Each backend gives its own record of one
device's work (a dataclass) as ``D``. :func:`poll_outcomes` follows such a job until every
device has an outcome (:func:`settled`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from workflows.backends import HostOutcome, JobRef, JobStatus

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")

D = TypeVar("D")


@dataclass
class JobEntry(Generic[D]):
    key: str
    action: str
    submitted_at: float  # epoch seconds
    devices: dict[str, D]  # host name -> what was asked of its device


class KeyedJournal(Generic[D]):
    def __init__(self, directory: Path, device: Callable[..., D]) -> None:
        self._dir = directory
        self._device = device

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a job key usable as a journal name: {key!r}")
        return self._dir / f"{key}.json"

    def load(self, key: str) -> JobEntry[D] | None:
        path = self._path(key)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        devices = {h: self._device(**d) for h, d in data["devices"].items()}
        return JobEntry(data["key"], data["action"], float(data["submitted_at"]), devices)

    def save(self, entry: JobEntry[D]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.key)
        tmp = path.with_suffix(".tmp")
        devices = {h: asdict(d) for h, d in entry.devices.items()}  # type: ignore[call-overload]
        body = {**asdict(entry), "devices": devices}
        tmp.write_text(json.dumps(body, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)


async def poll_outcomes(
    job: JobRef,
    step: Callable[[], Awaitable[Mapping[str, HostOutcome | None]]],
    *,
    wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
    running: str,
) -> JobStatus:
    """``step()`` (each device's outcome, None while it has none) every ``poll`` seconds
    until every device has one or ``wait`` seconds passed (``done`` False, ``running``)."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        status = settled(job, await step())
        if status is not None:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            return JobStatus(job=job, done=False, state=running)
        await sleep(min(poll, left))


def settled(job: JobRef, outcomes: Mapping[str, HostOutcome | None]) -> JobStatus | None:
    """The job's final status once every device has an outcome (``failed`` when any is
    not ``applied``), else None: still running."""
    if any(o is None for o in outcomes.values()):
        return None
    hosts = {h: o for h, o in outcomes.items() if o is not None}
    bad = any(o.status != "applied" for o in hosts.values())
    return JobStatus(job=job, done=True, state="failed" if bad else "successful", hosts=hosts)
