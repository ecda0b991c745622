"""NinjaOne's device, organisation and OS patch objects read into PatchGate's values, with
a clear error when a field PatchGate relies on is missing or of another type (a changed
response shape is an error on the host's run, never a crash).

Device (``GET /v2/devices-detailed``, ``GET /v2/device/{id}``): ``id``, ``systemName``,
``dnsName``, ``nodeClass``, ``organizationId``, ``offline``, ``lastContact`` (epoch
seconds), ``os`` (``name``, ``buildNumber``, ``releaseId``, ``needsReboot``).
OS patch (``GET /v2/device/{id}/os-patches``, ``/v2/queries/os-patches``): ``id``,
``name``, ``kbNumber``, ``severity``, ``status`` (MANUAL, APPROVED, FAILED, REJECTED),
``type``, ``deviceId``; an install record (``/v2/queries/os-patch-installs``) adds
``installedAt`` and has ``status`` INSTALLED or FAILED.

The patch identity: a Windows patch is its KB number (``KB5034441``); a patch without
one (macOS, definition updates) is named by NinjaOne's patch ``name``. Both the package
name and the "version" of the pinned set carry that identity (there is no version to an
OS patch): ``{"KB5034441": "KB5034441"}``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.backends.ninjaone.errors import NinjaOneError
from workflows.backends import HOST_BACKEND_VAR, HostAssessment
from workflows.ports import HostAdvisory, InventoryHost, UpgradablePackage

NAME = "ninjaone"
# NinjaOne's severities mapped to PatchGate's words (critical, high, medium, low).
SEVERITIES = {
    "CRITICAL": "critical",
    "IMPORTANT": "high",
    "MODERATE": "medium",
    "LOW": "low",
    "OPTIONAL": "low",
}
# What NinjaOne's apply installs, and so all a pinned set can hold: a patch awaiting
# approval (MANUAL), FAILED or REJECTED is not installed by an apply.
PINNABLE = frozenset({"APPROVED"})
_KB = re.compile(r"(?i)^(?:KB)?(\d{6,8})$")
_FAMILIES = {"WINDOWS": "windows", "MAC": "macos", "LINUX": "linux"}


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    dns_name: str | None
    node_class: str
    org_id: int | None
    offline: bool
    last_contact: float | None
    os_name: str
    os_build: str
    needs_reboot: bool

    @property
    def family(self) -> str:
        return next((f for p, f in _FAMILIES.items() if self.node_class.startswith(p)), "other")


@dataclass(frozen=True)
class Patch:
    id: str
    key: str  # the identity in the pinned set: the KB number, else the name
    name: str
    kb: str | None
    severity: str | None
    status: str
    type: str
    device_id: int | None
    installed_at: float | None = None


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise NinjaOneError(
            f"NinjaOne {where}: field {key!r} is {value!r}, not the documented type"
        )
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def device(obj: Any) -> Device:
    if not isinstance(obj, Mapping):
        raise NinjaOneError(f"NinjaOne answered a {type(obj).__name__} for a device")
    where = f"device {obj.get('id')!r}"
    raw_os = obj.get("os")
    os_info: Mapping[str, Any] = raw_os if isinstance(raw_os, Mapping) else {}
    org = obj.get("organizationId")
    dns = obj.get("dnsName")
    return Device(
        id=_field(obj, "id", int, where),
        name=_field(obj, "systemName", str, where),
        dns_name=dns if isinstance(dns, str) and dns else None,
        node_class=str(obj.get("nodeClass") or ""),
        org_id=org if isinstance(org, int) and not isinstance(org, bool) else None,
        offline=_field(obj, "offline", bool, where),
        last_contact=_number(obj.get("lastContact")),
        os_name=str(os_info.get("name") or ""),
        os_build=str(os_info.get("buildNumber") or ""),
        needs_reboot=os_info.get("needsReboot") is True,
    )


def kb_number(value: Any) -> str | None:
    """``KB5034441`` from ``5034441``/``KB5034441``/``kb5034441``; None otherwise."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    m = _KB.match(str(value).strip())
    return f"KB{m.group(1)}" if m else None


def patch(obj: Any) -> Patch:
    if not isinstance(obj, Mapping):
        raise NinjaOneError(f"NinjaOne answered a {type(obj).__name__} for an OS patch")
    where = f"OS patch {obj.get('id')!r}"
    name = _field(obj, "name", str, where)
    kb = kb_number(obj.get("kbNumber"))
    severity = obj.get("severity")
    dev = obj.get("deviceId")
    return Patch(
        id=str(_field(obj, "id", (str, int), where)),
        key=kb or name.strip(),
        name=name,
        kb=kb,
        severity=SEVERITIES.get(str(severity).upper()) if severity else None,
        status=str(_field(obj, "status", str, where)).upper(),
        type=str(obj.get("type") or ""),
        device_id=dev if isinstance(dev, int) and not isinstance(dev, bool) else None,
        installed_at=_number(obj.get("installedAt")),
    )


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def offline_why(dev: Device) -> str:
    seen = _when(dev.last_contact)
    since = f", last contact {seen}" if seen else ""
    return f"the NinjaOne agent on {dev.name} (device {dev.id}) is offline{since}"


def inventory_host(dev: Device, orgs: Mapping[int, str]) -> InventoryHost:
    org = orgs.get(dev.org_id) if dev.org_id is not None else None
    return InventoryHost(
        name=dev.name,
        address=dev.dns_name,
        groups=frozenset({NAME, *([org] if org else [])}),
        tags=frozenset({f"os:{dev.family}", f"class:{dev.node_class.lower()}"}),
        vars={
            HOST_BACKEND_VAR: NAME,
            "ninjaone_id": dev.id,
            "ninjaone_node_class": dev.node_class,
            "ninjaone_organization_id": dev.org_id,
            "ninjaone_organization": org,
            "ninjaone_os_family": dev.family,
            "ninjaone_os_name": dev.os_name,
            "ninjaone_os_build": dev.os_build,
            "ninjaone_offline": dev.offline,
            "ninjaone_last_contact": _when(dev.last_contact),
            # a coverage gap of the imported inventory (integrations.inventory.backend_source)
            **({"patchgate_unreachable": offline_why(dev)} if dev.offline else {}),
        },
    )


def assessment(dev: Device, patches: Sequence[Patch]) -> HostAssessment:
    """The approved OS patches as upgradable "packages" named by their identity, with an
    advisory each carrying NinjaOne's severity (patches awaiting approval are left out:
    an apply would not install them, see :data:`PINNABLE`)."""
    upgradable: list[UpgradablePackage] = []
    advisories: list[HostAdvisory] = []
    seen: set[str] = set()
    for p in patches:
        if p.status not in PINNABLE or p.key in seen:
            continue
        seen.add(p.key)
        security = p.type == "SECURITY_UPDATES" or p.severity in ("critical", "high")
        upgradable.append(
            UpgradablePackage(
                name=p.key, current=None, candidate=p.key, security=security, source=NAME
            )
        )
        advisories.append(
            HostAdvisory(id=f"ninjaone:{p.key}", packages={p.key: p.key}, severity=p.severity)
        )
    return HostAssessment(dev.name, True, upgradable=upgradable, advisories=advisories)
