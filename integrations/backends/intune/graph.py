"""Graph's objects read into PatchGate's values, with a clear error when a field
PatchGate relies on is missing or of another type (a changed shape is an error on the
host's run, never a crash).

managedDevice (Intune, ``v1.0/deviceManagement/managedDevices``): ``id``, ``deviceName``,
``operatingSystem``, ``osVersion`` (``10.0.22631.4460``), ``azureADDeviceId``,
``lastSyncDateTime``. windowsUpdateState (an update ring's ``deviceUpdateStates``):
``deviceId``, ``status`` (upToDate, pendingInstallation, pendingReboot, failed),
``qualityUpdateVersion``. qualityUpdateCatalogEntry: ``id``, ``shortName``,
``qualityUpdateClassification``, ``isExpeditable``, ``cveSeverityInformation``
(``maxSeverity``, ``maxBaseScore``, ``exploitedCves[].number``), ``productRevisions``
(``id`` = the build, ``osBuild``, ``knowledgeBaseArticle.id`` = the KB).

The patch identity: a quality update is carried as an :class:`UpgradablePackage` named
by its KB number (``KB5046633``) whose version is the build it brings the device to
(the product revision's id, ``10.0.22631.4541``); quality updates are cumulative, so a
device at that build or a later revision of the same build number has it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.backends.intune.errors import IntuneError, IntuneRejected
from workflows.backends import HOST_BACKEND_VAR, HostAssessment
from workflows.ports import HostAdvisory, InventoryHost, UpgradablePackage

NAME = "intune"
# Microsoft's severity words to PatchGate's (critical, high, medium, low).
SEVERITY = {"critical": "critical", "important": "high", "moderate": "medium", "low": "low"}


@dataclass(frozen=True)
class Device:
    id: str  # Intune's managed device id
    name: str
    os: str
    build: str
    aad_id: str | None  # the Microsoft Entra device id: the updatable asset's id
    last_sync: str | None


@dataclass(frozen=True)
class Revision:
    build: str
    kb: str | None
    number: int  # the build number (22631)
    ubr: int  # the update build revision (4541)


@dataclass(frozen=True)
class Entry:
    id: str
    short_name: str
    classification: str
    expeditable: bool
    severity: str | None
    cves: tuple[str, ...]
    revisions: tuple[Revision, ...]

    def revision_for(self, build: str) -> Revision | None:
        parsed = parse_build(build)
        if parsed is None:
            return None
        return next((r for r in self.revisions if r.number == parsed[0]), None)


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise IntuneError(f"Intune {where}: field {key!r} is {value!r}, not the documented type")
    return value


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def safe_id(value: Any, what: str) -> str:
    """An id Graph gave, checked before it goes into a URL path (no ``/``, ``..``, ``?``)."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or ".." in value:
        raise IntuneError(f"Intune: {what} {str(value)[:80]!r} is not a usable id")
    return value


def parse_build(build: str) -> tuple[int, int] | None:
    """``10.0.22631.4541`` -> (22631, 4541); None when it is not such a build."""
    parts = build.strip().split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[2]), int(parts[3])


def has(build: str, revision: Revision) -> bool:
    """The device at ``build`` has the (cumulative) revision."""
    parsed = parse_build(build)
    return parsed is not None and parsed[0] == revision.number and parsed[1] >= revision.ubr


def device(obj: Mapping[str, Any]) -> Device:
    where = f"managed device {obj.get('id')!r}"
    aad = obj.get("azureADDeviceId")
    zero = "00000000-0000-0000-0000-000000000000"
    return Device(
        id=safe_id(_field(obj, "id", str, where), "managed device id"),
        name=_field(obj, "deviceName", str, where),
        os=str(obj.get("operatingSystem") or ""),
        build=str(obj.get("osVersion") or ""),
        aad_id=safe_id(aad, "azureADDeviceId")
        if isinstance(aad, str) and aad and aad != zero
        else None,
        last_sync=None if obj.get("lastSyncDateTime") is None else str(obj["lastSyncDateTime"]),
    )


def entry(obj: Mapping[str, Any]) -> Entry:
    where = f"catalog entry {obj.get('id')!r}"
    cve = obj.get("cveSeverityInformation") or {}
    if not isinstance(cve, Mapping):
        raise IntuneError(f"Intune {where}: cveSeverityInformation is not an object")
    revisions = []
    for rev in obj.get("productRevisions") or ():
        build = _field(rev, "id", str, where)
        parsed = parse_build(build)
        if parsed is None:
            raise IntuneError(f"Intune {where}: product revision {build!r} is not a build")
        kb = (rev.get("knowledgeBaseArticle") or {}).get("id")
        revisions.append(Revision(build, str(kb) if kb else None, *parsed))
    severity = cve.get("maxSeverity")
    return Entry(
        id=_field(obj, "id", str, where),
        short_name=str(obj.get("shortName") or obj.get("displayName") or obj["id"]),
        classification=str(obj.get("qualityUpdateClassification") or ""),
        expeditable=obj.get("isExpeditable") is True,
        severity=SEVERITY.get(str(severity).lower()) if severity else None,
        cves=tuple(
            str(c["number"]) for c in cve.get("exploitedCves") or () if isinstance(c, Mapping)
        ),
        revisions=tuple(revisions),
    )


def stale(last_sync: str | None, max_age: float, now: float) -> str | None:
    """Why a device's last check-in is too old (or unknown), or None."""
    if not last_sync:
        return "Intune has no check-in (lastSyncDateTime) for it"
    try:
        when = dt.datetime.fromisoformat(last_sync.replace("Z", "+00:00"))
    except ValueError:
        return f"its lastSyncDateTime {last_sync!r} is not a date"
    age = now - when.timestamp()
    return None if age <= max_age else f"it last checked in at {last_sync}"


def inventory_host(dev: Device) -> InventoryHost:
    gap = None if dev.aad_id else "it has no Microsoft Entra device id (not Entra joined)"
    return InventoryHost(
        name=dev.name,
        groups=frozenset({"intune"}),
        tags=frozenset({"os:windows"}),
        vars={
            HOST_BACKEND_VAR: NAME,
            "intune_device_id": dev.id,
            "intune_azure_ad_device_id": dev.aad_id,
            "intune_os_version": dev.build,
            "intune_last_sync": dev.last_sync,
            # the OS family and build as the domain's inventory variables name them
            # (patchgate_os_family / patchgate_os_build, issue 21 item 4)
            "patchgate_os_family": "windows",
            "patchgate_os_build": dev.build,
            # a coverage gap of the imported inventory (integrations.inventory.backend_source)
            **({} if gap is None else {"patchgate_unreachable": f"{dev.name}: {gap}"}),
        },
    )


def unusable_host(name: str, why: str) -> InventoryHost:
    """A device Intune lists in a shape PatchGate cannot use: a coverage gap."""
    return InventoryHost(
        name=name,
        groups=frozenset({"intune"}),
        vars={HOST_BACKEND_VAR: NAME, "patchgate_unreachable": why},
    )


def assessment(dev: Device, entries: Sequence[Entry]) -> HostAssessment:
    """The newest applicable quality update for the device (they are cumulative)."""
    parsed = parse_build(dev.build)
    if parsed is None:
        return HostAssessment(dev.name, True, error=f"osVersion {dev.build!r} is not a build")
    best: tuple[Revision, Entry] | None = None
    for e in entries:
        rev = e.revision_for(dev.build)
        if rev is not None and rev.ubr > parsed[1] and (best is None or rev.ubr > best[0].ubr):
            best = (rev, e)
    if best is None:
        return HostAssessment(dev.name, True)
    rev, e = best
    name = rev.kb or e.id
    security = e.classification == "security" or bool(e.cves)
    upgradable = UpgradablePackage(name, dev.build, rev.build, security=security, source=NAME)
    advisory = HostAdvisory(
        id=f"intune:{e.short_name}", packages={name: rev.build}, cves=e.cves, severity=e.severity
    )
    return HostAssessment(dev.name, True, upgradable=[upgradable], advisories=[advisory])


def state(obj: Any) -> tuple[str, str, tuple[str, ...]]:
    """A deployment's (effectiveValue, requestedValue, reasons)."""
    state = obj.get("state") if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("effectiveValue"), str):
        raise IntuneError(f"Intune: a deployment without state.effectiveValue: {str(obj)[:200]}")
    reasons = tuple(str(r.get("value")) for r in state.get("reasons") or () if isinstance(r, dict))
    return state["effectiveValue"], str(state.get("requestedValue") or "none"), reasons


def pinned(
    name: str, dev: Device, pins: Mapping[str, str | None], entries: Sequence[Entry]
) -> tuple[Entry, Revision, str]:
    """The catalog entry, revision and KB of the pinned quality update for the device's
    build (a platform's pinned set may name the KB of another Windows build too: quality
    updates are cumulative, the newest revision of the device's build wins)."""
    found: list[tuple[Entry, Revision, str]] = []
    for kb, build in pins.items():
        for e in entries:
            for r in e.revisions:
                if r.build == build and kb in (r.kb, e.id):
                    found.append((e, r, kb))
    parsed = parse_build(dev.build)
    mine = [f for f in found if parsed is not None and f[1].number == parsed[0]]
    if not mine:
        raise IntuneRejected(
            f"intune: no quality update catalog entry brings {name} (build {dev.build}) to"
            f" a pinned build ({', '.join(f'{k}={v}' for k, v in sorted(pins.items())) or 'none'})"
        )
    return max(mine, key=lambda f: f[1].ubr)
