"""Tanium's endpoints, sensor rows and Patch deployment results read into PatchGate's
values, and the deployment body PatchGate sends.

The patch identity: an update is carried as ``UpgradablePackage(name=<Tanium UID>,
candidate=<Title>)``: the Tanium UID is what a deployment names
(``patchTaniumUids``), the title is what the "Patch - Deployment Results" sensor reports
a result for (its columns are Deployment ID, Patch Title, Result). A pinned set for a
Tanium host is therefore ``{<Tanium UID>: <Title>}``, and a host is applied when every
pinned title reports ``Succeeded`` for the host's deployment. Its :class:`PatchIdentity`:
the Tanium UID as catalog id, the title, the ``Classification`` column, and the KB when
the title names one (``… (KB5034441)``). The endpoint's facts, for Windows and Mac
endpoints: family by ``os.platform``, OS id the family, version ``os.name`` (one pinned
set per OS release), no build (the endpoint fields read give none).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.backends.tanium.gateway import APPLICABILITY, Endpoint, require
from integrations.backends.tanium.options import TaniumOptions
from workflows.backends import HOST_BACKEND_VAR, HostAssessment, HostOutcome
from workflows.ports import (
    OS_FAMILY_VAR,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    PatchIdentity,
    UpgradablePackage,
)

NAME = "tanium"
SECURITY_CLASSES = frozenset({"security updates", "security"})
_OS_TYPES = {"windows": "windows", "mac": "macos"}  # any other platform: linux


def os_type(platform: str) -> str:
    """The deployment's ``osType`` from the endpoint's ``os.platform``."""
    return _OS_TYPES.get(platform.strip().lower(), "linux")


def os_family(platform: str) -> str | None:
    """PatchGate's OS family for a Tanium ``os.platform`` (None: another platform)."""
    return {"windows": "windows", "mac": "macos", "linux": "linux"}.get(platform.strip().lower())


def facts(ep: Endpoint) -> HostFacts | None:
    """A Windows or Mac endpoint's facts (None for others: PatchGate pins those per
    backend, as before)."""
    family = os_family(ep.platform)
    if family not in ("windows", "macos"):
        return None
    return HostFacts(
        os_id=family,
        os_version=ep.os_name or "unknown",
        arch="any",
        kernel="",
        package_manager="windows-update" if family == "windows" else "softwareupdate",
        boot_id="",
        uptime_seconds=0.0,
        reboot_required=False,
        os_family="windows" if family == "windows" else "macos",
    )


_KB = re.compile(r"\bKB(\d{6,8})\b", re.IGNORECASE)


def identity(uid: str, title: str, classification: str) -> PatchIdentity:
    kb = _KB.search(title)
    return PatchIdentity(
        kb=f"KB{kb.group(1)}" if kb else None,
        catalog_id=uid,
        title=title or None,
        classification=classification.strip() or None,
    )


def stale_why(ep: Endpoint, now: dt.datetime, stale_after: float) -> str | None:
    if ep.last_seen is None:
        return f"Tanium reports no last-seen time for {ep.name} (endpoint {ep.id})"
    age = (now - ep.last_seen).total_seconds()
    if age > stale_after:
        return (
            f"the Tanium client on {ep.name} (endpoint {ep.id}) was last seen"
            f" {ep.last_seen.isoformat()}, {age / 3600:.1f} h ago"
        )
    return None


def inventory_host(ep: Endpoint, now: dt.datetime, stale_after: float) -> InventoryHost:
    platform = ep.platform.lower()
    why = stale_why(ep, now, stale_after)
    return InventoryHost(
        name=ep.name,
        groups=frozenset({"tanium", *([f"tanium-{platform}"] if platform else [])}),
        tags=frozenset({f"os:{platform}"} if platform else set()),
        vars={
            HOST_BACKEND_VAR: NAME,
            "tanium_id": ep.id,
            "tanium_os_name": ep.os_name,
            "tanium_platform": ep.platform,
            "tanium_last_seen": None if ep.last_seen is None else ep.last_seen.isoformat(),
            **({OS_FAMILY_VAR: family} if (family := os_family(ep.platform)) else {}),
            # a coverage gap of the imported inventory (integrations.inventory.backend_source)
            **({} if why is None else {"patchgate_unreachable": why}),
        },
    )


def assessment(ep: Endpoint, rows: Sequence[Mapping[str, str]]) -> HostAssessment:
    require(rows, APPLICABILITY, "Title", "Tanium UID", "Install Status")
    upgradable: list[UpgradablePackage] = []
    advisories: list[HostAdvisory] = []
    for row in rows:
        if row["Install Status"].strip().lower() != "not installed" or not row["Tanium UID"]:
            continue
        uid, title = row["Tanium UID"], row["Title"]
        kind = row.get("Classification", "")
        security = kind.strip().lower() in SECURITY_CLASSES
        named = identity(uid, title, kind)
        upgradable.append(
            UpgradablePackage(uid, None, title, security=security, source=NAME, identity=named)
        )
        if security:
            advisories.append(HostAdvisory(id=f"tanium:{uid}", packages={uid: title}))
    return HostAssessment(
        ep.name, True, facts=facts(ep), upgradable=upgradable, advisories=advisories
    )


def deployment_body(
    *,
    name: str,
    description: str,
    content_set_id: Any,
    platform: str,
    uids: Sequence[str],
    limiting_group_id: Any,
    target_group_id: Any,
    start: dt.datetime,
    opts: TaniumOptions,
) -> dict[str, Any]:
    """The body of ``POST /plugin/products/patch/v2/deployments``, field for field as
    Tanium's published playbook sends it (an install, once, to a question group)."""
    end = start + dt.timedelta(seconds=opts.window)
    return {
        "contentSetId": content_set_id,
        "description": description,
        "distributeOverTimeMinutes": 0,
        "downloadImmediately": True,
        "download_immediately": True,  # the playbook sends both spellings; so does PatchGate
        "endTime": _stamp(end),
        "eussAvailableBeforeStart": False,
        "eussHideFromActivity": False,
        "frequencyType": "single",
        "issuerTimezone": "UTC",
        "name": name,
        "osType": os_type(platform),
        "overrideBlacklists": opts.override_blocklists,
        "overrideMaintenanceWindows": opts.override_maintenance_windows,
        "patchListIdsWithLatestVersion": [],
        "patchListIdsWithPinnedVersion": [],
        "patchTaniumUids": list(uids),
        "restart": opts.restart,
        "startTime": _stamp(start),
        "targetLimitingGroupIds": [limiting_group_id],
        "targetedQuestionGroupIds": [target_group_id],
        "type": "install",
        "useTaniumClientTimeZone": False,
    }


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(
    host: str, deployment_id: str, patches: Mapping[str, str], rows: Sequence[Mapping[str, str]]
) -> HostOutcome | None:
    """The host's outcome from its "Patch - Deployment Results" rows for its deployment;
    None while a pinned title has no final result yet."""
    results = {
        r["Patch Title"]: r["Result"].strip()
        for r in rows
        if r.get("Deployment ID", "").strip() == deployment_id
    }
    said = f"Tanium Patch deployment {deployment_id}: " + ", ".join(
        f"{t}: {results.get(t, 'no result yet')}" for t in sorted(patches.values())
    )
    failed = sorted(t for t in patches.values() if results.get(t, "").lower() == "failed")
    if failed:
        after = {u: t for u, t in patches.items() if results.get(t, "").lower() == "succeeded"}
        return HostOutcome(
            host=host, status="failed", after=after, output=said, failed_task=failed[0]
        )
    if all(results.get(t, "").lower() == "succeeded" for t in patches.values()):
        return HostOutcome(host=host, status="applied", after=dict(patches), output=said)
    return None
