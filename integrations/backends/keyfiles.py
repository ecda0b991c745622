"""The local journal of the tool backends whose tool keeps nowhere PatchGate could find a
job again by its key (``automox``, ``ninjaone``, ``tanium``, ``intune``), and the loop
that follows such a job until every host has an outcome.

:class:`KeyFiles` keeps one JSON document per job key in a directory, written atomically
(a temporary file, then a rename), so a crash leaves the previous version or the new one,
never half of one; a key that is not a safe file name is refused. A backend whose entry
is "a job's devices" (Automox's device commands, NinjaOne's patch applies) uses
:class:`KeyedJournal` with its own record of one device's work (a dataclass) as ``D``;
one with another shape (Tanium, Intune) reads and writes its documents through
:class:`KeyFiles` itself. :func:`follow_hosts` reads the hosts' outcomes until every one
has one.
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


class KeyFiles:
    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a job key usable as a journal name: {key!r}")
        return self._dir / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return data

    def write(self, key: str, data: dict[str, Any]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, path)


@dataclass
class JobEntry(Generic[D]):
    key: str
    action: str
    submitted_at: float  # epoch seconds
    devices: dict[str, D]  # host name -> what was asked of its device


class KeyedJournal(Generic[D]):
    """:class:`JobEntry` documents by key; ``device`` builds one device's record back
    from its fields."""

    def __init__(self, directory: Path, device: Callable[..., D]) -> None:
        self._files = KeyFiles(directory)
        self._device = device

    def load(self, key: str) -> JobEntry[D] | None:
        data = self._files.read(key)
        if data is None:
            return None
        devices = {h: self._device(**d) for h, d in data["devices"].items()}
        return JobEntry(data["key"], data["action"], float(data["submitted_at"]), devices)

    def save(self, entry: JobEntry[D]) -> None:
        devices = {h: asdict(d) for h, d in entry.devices.items()}  # type: ignore[call-overload]
        self._files.write(entry.key, {**asdict(entry), "devices": devices})


Read = Callable[[], Awaitable[Mapping[str, HostOutcome | None]]]


async def follow_hosts(
    job: JobRef,
    read: Read,
    *,
    wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
    pending: str,
) -> JobStatus:
    """Read the hosts' outcomes (None: not final yet) every ``poll`` seconds for at most
    ``wait`` seconds; ``done`` once every host has one (``failed`` when any is not
    applied), else the tool's word ``pending`` for a job still running."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        outcomes = await read()
        if all(o is not None for o in outcomes.values()):
            hosts = {h: o for h, o in outcomes.items() if o is not None}
            bad = any(o.status != "applied" for o in hosts.values())
            state = "failed" if bad else "successful"
            return JobStatus(job=job, done=True, state=state, hosts=hosts)
        left = deadline - time.monotonic()
        if left <= 0:
            return JobStatus(job=job, done=False, state=pending)
        await sleep(min(poll, left))
