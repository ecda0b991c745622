"""The simulated world the recording executor works on: hosts (installed versions, boot
id, the apply operations they ran), a repository, injected failures. Plain dataclasses,
so the whole state is one JSON file (with an append-only journal beside it:
simjournal.py, whose ``load_state`` reads both) that a real ``patchgate serve`` run by a
test and the test itself can share."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

Failure = Literal["error", "unreachable", "lost_after", "hang", "unhealthy"]
STEPS = (
    "facts",
    "list_upgradable",
    "host_advisories",
    "simulate",
    "preflight",
    "apply",
    "rollback",
    "reboot",
    "health",
)


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """A natural sort key: good enough for the simulated repository's versions."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+~:]", version))


@dataclass
class SimHost:
    installed: dict[str, str]
    os_id: str = "debian"
    os_version: str = "12"
    arch: str = "amd64"
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reboot_required: bool = False
    package_manager: str = "apt"
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied_ops: list[str] = field(default_factory=list)


@dataclass
class SimState:
    hosts: dict[str, SimHost] = field(default_factory=dict)
    repo: dict[str, list[str]] = field(default_factory=dict)
    security: list[str] = field(default_factory=list)  # "pkg=version" fixing advisories
    depends: dict[str, dict[str, str]] = field(default_factory=dict)  # "pkg=ver" -> new deps
    bad_versions: list[str] = field(default_factory=list)  # "pkg=ver": health fails
    broken_versions: list[str] = field(default_factory=list)  # "pkg=ver": install exits 100
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> step -> how
    default_installed: dict[str, str] = field(default_factory=dict)
    # What dnf/zypper hosts' own advisory data says (HostAdvisory fields; dates as ISO
    # strings): host_advisories gives a non-apt host those fixing a package it has.
    advisories: list[dict[str, Any]] = field(default_factory=list)
