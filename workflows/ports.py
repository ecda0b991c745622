"""Ports: what the domain needs from the outside world, as Protocols.

Adapters in ``integrations/`` implement them; ``bot/app.py`` picks which.
Everything crossing a port is a small typed value defined here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# --- hosts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InventoryHost:
    """A host as the inventory describes it (connection details and attributes).
    Slotted: serve holds every host of the inventory (a 100,000-host one took 139 MB
    with a ``__dict__`` per host)."""

    name: str
    address: str | None = None
    port: int = 22
    user: str | None = None
    groups: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    environment: str | None = None
    owner: str | None = None
    criticality: Literal["low", "medium", "high", "critical"] | None = None
    internet_facing: bool = False
    private_key_file: str | None = None
    become: bool = True
    jump_host: str | None = None
    accept_new_host_key: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def connect_address(self) -> str:
        return self.address or self.name


# The operating-system families PatchGate knows. ``linux`` hosts are patched through a
# package manager (over SSH or a tool); ``windows`` and ``macos`` hosts only through a
# fleet tool's backend, and their patch identity is an update (KB number, catalog id),
# not a package version (docs/windows-macos.md).
OsFamily = Literal["linux", "windows", "macos"]
OS_FAMILIES: tuple[OsFamily, ...] = ("linux", "windows", "macos")
# The inventory variables that set a host's family and build (a tool's import sets them).
OS_FAMILY_VAR = "patchgate_os_family"
OS_BUILD_VAR = "patchgate_os_build"
# ``windows-update``/``softwareupdate``: the OS's own updater, driven by a fleet tool.
PackageManager = Literal["apt", "dnf", "yum", "zypper", "windows-update", "softwareupdate"]


@dataclass(frozen=True)
class HostFacts:
    os_id: str
    os_version: str
    arch: str
    kernel: str
    package_manager: PackageManager
    boot_id: str
    uptime_seconds: float
    reboot_required: bool
    # Windows/macOS: the family and the OS build ("22631.3007", "23C71"); the platform
    # key stays os id, version and arch, so hosts of one release share a pinned set
    # whatever their build.
    os_family: OsFamily = "linux"
    build: str | None = None

    @property
    def platform(self) -> str:
        """The key a pinned patch set is built per: os id, version, arch."""
        return f"{self.os_id}-{self.os_version}-{self.arch}"


PatchKind = Literal["package", "update"]


@dataclass(frozen=True)
class PatchIdentity:
    """What names an update that is not a package version: a Windows KB or a fleet
    tool's catalog entry, a macOS update. ``kind`` ``update`` for those; a package keeps
    no identity (``None`` on :class:`UpgradablePackage`)."""

    kind: PatchKind = "update"
    kb: str | None = None  # "KB5034441"
    catalog_id: str | None = None  # the tool's id for the update (Graph catalog entry, ...)
    title: str | None = None  # "2024-01 Cumulative Update for Windows 11 ..."
    classification: str | None = None  # security, critical, definition, feature, driver

    def to_json(self) -> dict[str, str]:
        """Canonical: only the fields that are set, in a fixed key order (for the hash)."""
        out: dict[str, str] = {"kind": self.kind}
        for key in ("kb", "catalog_id", "title", "classification"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = str(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PatchIdentity:
        def text(key: str) -> str | None:
            value = data.get(key)
            return None if value in (None, "") else str(value)

        return cls(
            kind="package" if data.get("kind") == "package" else "update",
            kb=text("kb"),
            catalog_id=text("catalog_id"),
            title=text("title"),
            classification=text("classification"),
        )


@dataclass(frozen=True)
class UpgradablePackage:
    """A pending update on a host: a package (``name``, version ``candidate``) or, from a
    fleet tool, a vendor update (``name`` its KB number or catalog id, ``candidate`` its
    revision; ``identity`` its KB, catalog id, title and classification)."""

    name: str
    current: str | None
    candidate: str
    security: bool = False
    source: str | None = None
    identity: PatchIdentity | None = None


@dataclass(frozen=True)
class Simulation:
    """What installing a set of packages would do, from the package manager's simulation."""

    installs: Mapping[str, str]  # package -> version it would end at (upgrades and new deps)
    removes: Sequence[str] = ()


@dataclass(frozen=True)
class Preflight:
    ok: bool
    problems: Sequence[str] = ()
    unavailable: Sequence[str] = ()  # "pkg=version" no longer installable
    # "pkg=version" installed now whose package could not be kept on the host for a
    # rollback; not counted in ``ok``: the plan's rollback.require_material decides.
    rollback_material_missing: Sequence[str] = ()


@dataclass(frozen=True)
class ApplyResult:
    op_id: str
    before: Mapping[str, str | None]  # version before, None if it was not installed
    after: Mapping[str, str | None]
    exit_code: int
    output_tail: str = ""
    reboot_required: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class HostAdvisory:
    """An advisory as a host's own package manager reports it (dnf updateinfo, zypper
    patches): the packages it fixes (package -> fixed version, None when not named)."""

    id: str
    packages: Mapping[str, str | None]
    cves: Sequence[str] = ()
    severity: str | None = None  # critical, high, medium, low (vendor words mapped)
    published: dt.datetime | None = None
    # A CVSS base score the tool gives (Graph's maxBaseCvssScore, a CVE's score); it
    # outranks the severity word in the risk score, as an advisory feed's does.
    cvss: float | None = None


@dataclass(frozen=True)
class RollbackResult:
    ok: bool
    after: Mapping[str, str | None]
    exit_code: int
    output_tail: str = ""


class Executor(Protocol):
    """Works on hosts. High-level and typed: the domain never builds a shell command."""

    async def facts(self, host: InventoryHost) -> HostFacts: ...

    async def list_upgradable(self, host: InventoryHost) -> Sequence[UpgradablePackage]: ...

    async def simulate(self, host: InventoryHost, packages: Sequence[str]) -> Simulation: ...

    async def installed(
        self, host: InventoryHost, packages: Sequence[str]
    ) -> Mapping[str, str | None]: ...

    async def preflight(self, host: InventoryHost, patchset: Mapping[str, str]) -> Preflight: ...

    async def apply(
        self, host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult: ...

    async def apply_status(self, host: InventoryHost, *, op_id: str) -> ApplyResult | None:
        """Read back a detached apply by id: its result, or None if it never started.

        Used after a restart for a host left in ``applying``; waits (bounded) if the
        command is still running on the host.
        """
        ...

    async def rollback(
        self, host: InventoryHost, snapshot: Mapping[str, str | None]
    ) -> RollbackResult: ...

    async def reboot_required(self, host: InventoryHost) -> bool: ...

    async def host_advisories(self, host: InventoryHost) -> Sequence[HostAdvisory]:
        """The security advisories the host's package manager knows for its available
        updates (dnf/yum updateinfo, zypper patches); empty where it has none (apt)."""
        ...

    async def reboot(self, host: InventoryHost) -> str:
        """Reboot and wait (bounded) until the host answers again; returns the new boot id."""
        ...


@dataclass(frozen=True)
class LearnedHostKey:
    """An SSH host key accepted at first contact; ``name`` is how known_hosts names the
    host (``addr`` or ``[addr]:port``)."""

    name: str
    key_type: str
    key_base64: str


class KnownHostStore(Protocol):
    """Host keys accepted at first contact, shared by every replica.

    The SSH executor only verifies keys; where an accepted key is kept (and audited) is
    the domain's business, so the executor reaches it through this port.
    """

    async def load(self, name: str) -> Sequence[LearnedHostKey]:
        """The keys learned for one known_hosts name (any key type)."""
        ...

    async def learn(
        self, *, name: str, host: str, key_type: str, key_base64: str, fingerprint: str
    ) -> bool:
        """Keep a first-seen key and audit it, in one unit of work.

        Returns False, storing nothing, when another replica already kept a different key
        of this type for ``name``; True when the key is (now, or already) the kept one.
        """
        ...


# --- health -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthResult:
    name: str
    ok: bool
    detail: str = ""


class HealthChecker(Protocol):
    async def check(self, host: InventoryHost, checks: Sequence[Any]) -> Sequence[HealthResult]:
        """Run the plan's health checks (``workflows.plans.HealthCheck``) against a host."""
        ...


# --- notifications and tickets -------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What a deliverer reports back: e.g. Slack's channel and ts, or a Jira key."""

    data: Mapping[str, Any]


# --- people, inventory, time, advisories ------------------------------------------------------


class Directory(Protocol):
    async def groups_of(self, user_id: str) -> frozenset[str]:
        """The user-group IDs the user belongs to."""
        ...


class Inventory(Protocol):
    def hosts(self) -> Sequence[InventoryHost]: ...


class Clock(Protocol):
    def now(self) -> dt.datetime: ...
