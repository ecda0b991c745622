"""Automox's device and package objects read into PatchGate's values, with a clear error
when a field PatchGate relies on is missing or of another type (a changed response shape
is an error on the host's run, never a crash).

Device (``GET /servers``, ``GET /servers/{id}``): ``id``, ``name``, ``os_family``,
``os_name``, ``os_version``, ``server_group_id``, ``connected``, ``last_disconnect_time``,
``needs_reboot``; for the ``tool`` health check also ``compliant`` and
``last_refresh_time``.
Package (``GET /servers/{id}/packages``): ``name``, ``version``, ``installed`` (false: an
available update of that version), ``ignored``, ``severity``, ``cves``, ``display_name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integrations.backends.automox.errors import AutomoxError
from workflows.backends import HOST_BACKEND_VAR, DeviceStatus, HostAssessment
from workflows.hostos import family_word
from workflows.ports import OS_FAMILY_VAR, HostAdvisory, InventoryHost, UpgradablePackage

SECURITY_SEVERITIES = frozenset({"critical", "high"})


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    os_family: str
    os_name: str
    os_version: str
    group_id: int | None
    connected: bool
    last_disconnect_time: str | None
    needs_reboot: bool


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise AutomoxError(f"Automox {where}: field {key!r} is {value!r}, not the documented type")
    return value


def device(obj: Mapping[str, Any]) -> Device:
    where = f"device {obj.get('id')!r}"
    group = obj.get("server_group_id")
    return Device(
        id=_field(obj, "id", int, where),
        name=_field(obj, "name", str, where),
        os_family=str(obj.get("os_family") or ""),
        os_name=str(obj.get("os_name") or ""),
        os_version=str(obj.get("os_version") or ""),
        group_id=group if isinstance(group, int) and not isinstance(group, bool) else None,
        connected=_field(obj, "connected", bool, where),
        last_disconnect_time=None
        if obj.get("last_disconnect_time") is None
        else str(obj["last_disconnect_time"]),
        needs_reboot=bool(obj.get("needs_reboot", False)),
    )


def inventory_host(dev: Device, groups: Mapping[int, str]) -> InventoryHost:
    group = groups.get(dev.group_id) if dev.group_id is not None else None
    return InventoryHost(
        name=dev.name,
        groups=frozenset({"automox", *([group] if group else [])}),
        tags=frozenset({f"os:{dev.os_family.lower()}"} if dev.os_family else set()),
        vars={
            HOST_BACKEND_VAR: "automox",
            "automox_id": dev.id,
            "automox_os_family": dev.os_family,
            "automox_os_name": dev.os_name,
            "automox_os_version": dev.os_version,
            "automox_group": group,
            "automox_connected": dev.connected,
            "automox_last_disconnect_time": dev.last_disconnect_time,
            **os_family_vars(dev),
            # a coverage gap of the imported inventory (integrations.inventory.backend_source)
            **({} if dev.connected else {"patchgate_unreachable": disconnected_why(dev)}),
        },
    )


def os_family_vars(dev: Device) -> dict[str, str]:
    """PatchGate's OS family for the device (Automox's ``os_family``: Windows, Mac,
    Linux); none when Automox names another."""
    try:
        return {OS_FAMILY_VAR: family_word(dev.os_family)}
    except ValueError:
        return {}


def disconnected_why(dev: Device) -> str:
    since = f" since {dev.last_disconnect_time}" if dev.last_disconnect_time else ""
    return f"the Automox agent on {dev.name} (device {dev.id}) is disconnected{since}"


def installed_versions(packages: Sequence[Mapping[str, Any]], device_id: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in packages:
        where = f"package of device {device_id}"
        if _field(pkg, "installed", bool, where):
            out[_field(pkg, "name", str, where)] = str(_field(pkg, "version", str, where))
    return out


def assessment(dev: Device, packages: Sequence[Mapping[str, Any]]) -> HostAssessment:
    installed = installed_versions(packages, dev.id)
    upgradable: list[UpgradablePackage] = []
    advisories: list[HostAdvisory] = []
    for pkg in packages:
        where = f"package of device {dev.id}"
        if pkg.get("installed") or pkg.get("ignored") or pkg.get("group_ignored"):
            continue
        name = _field(pkg, "name", str, where)
        version = _field(pkg, "version", str, where)
        severity = None if pkg.get("severity") in (None, "") else str(pkg["severity"]).lower()
        cves = tuple(str(c) for c in pkg.get("cves") or ())
        security = bool(cves) or severity in SECURITY_SEVERITIES
        upgradable.append(
            UpgradablePackage(
                name=name,
                current=installed.get(name),
                candidate=version,
                security=security,
                source="automox",
            )
        )
        if cves or severity:
            advisories.append(
                HostAdvisory(
                    id=f"automox:{pkg.get('display_name') or name}-{version}",
                    packages={name: version},
                    cves=cves,
                    severity=severity,
                )
            )
    return HostAssessment(
        host=dev.name, reachable=True, upgradable=upgradable, advisories=advisories
    )


def device_status(name: str, obj: Mapping[str, Any], *, require_compliant: bool) -> DeviceStatus:
    """Automox's own view of a device after a job: well when its agent is connected and
    it needs no reboot (and, with ``require_compliant``, Automox reports it compliant
    with its policies)."""
    try:
        dev = device(obj)
    except AutomoxError as exc:
        return DeviceStatus(host=name, ok=False, state="unknown", detail=str(exc))
    refreshed = obj.get("last_refresh_time")
    seen = f" (last refresh {str(refreshed)[:40]})" if refreshed else ""
    if not dev.connected:
        return DeviceStatus(host=name, ok=False, state="disconnected", detail=disconnected_why(dev))
    if dev.needs_reboot:
        why = f"Automox reports device {dev.id} needs a reboot{seen}"
        return DeviceStatus(host=name, ok=False, state="needs reboot", detail=why)
    compliant = obj.get("compliant")
    if require_compliant and compliant is not True:
        why = f"Automox reports device {dev.id} compliant={compliant!r}{seen}"
        return DeviceStatus(host=name, ok=False, state="not compliant", detail=why)
    return DeviceStatus(
        host=name, ok=True, state="connected" + (", compliant" if compliant is True else "")
    )
