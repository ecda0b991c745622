"""Tanium's endpoints, sensor rows and Patch deployment results read into PatchGate's
values, and the deployment body PatchGate sends.

The patch identity: an update is carried as ``UpgradablePackage(name=<Tanium UID>,
candidate=<Title>)``: the Tanium UID is what a deployment names
(``patchTaniumUids``), the title is what the "Patch - Deployment Results" sensor reports
a result for (its columns are Deployment ID, Patch Title, Result). A pinned set for a
Tanium host is therefore ``{<Tanium UID>: <Title>}``, and a host is applied when every
pinned title reports ``Succeeded`` for the host's deployment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.backends.tanium.gateway import APPLICABILITY, Endpoint, require
from integrations.backends.tanium.options import TaniumOptions
from workflows.backends import HOST_BACKEND_VAR, HostAssessment, HostOutcome
from workflows.ports import HostAdvisory, InventoryHost, UpgradablePackage

NAME = "tanium"
SECURITY_CLASSES = frozenset({"security updates", "security"})
_OS_TYPES = {"windows": "windows", "mac": "macos"}  # any other platform: linux


def os_type(platform: str) -> str:
    """The deployment's ``osType`` from the endpoint's ``os.platform``."""
    return _OS_TYPES.get(platform.strip().lower(), "linux")


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
        security = row.get("Classification", "").strip().lower() in SECURITY_CLASSES
        upgradable.append(UpgradablePackage(uid, None, title, security=security, source=NAME))
        if security:
            advisories.append(HostAdvisory(id=f"tanium:{uid}", packages={uid: title}))
    return HostAssessment(ep.name, True, upgradable=upgradable, advisories=advisories)


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
