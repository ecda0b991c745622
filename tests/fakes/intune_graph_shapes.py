"""The shapes of the Graph emulator (tests/fakes/intune_graph_api.py): its state and the
JSON bodies it answers, as Microsoft's Graph reference pages give them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

QUALITY = "#microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry"


@dataclass
class FakeDevice:
    name: str
    build: str  # osVersion, e.g. 10.0.22631.3007
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    aad_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    last_sync: str = "2026-12-07T08:00:00Z"
    operating_system: str = "Windows"
    fail: str | None = None  # the ring state's word when its update fails
    asset_error: str | None = None  # an azureADDeviceRegistrationError reason
    enrolled: bool = False
    ring_status: str = "pendingInstallation"
    progress: int = 0


@dataclass
class FakeEntry:
    id: str
    short_name: str
    revisions: list[dict[str, Any]]
    classification: str = "security"
    expeditable: bool = True
    severity: str | None = "critical"
    base_score: float | None = 9.8
    cves: list[str] = field(default_factory=list)
    release: str = "2026-11-11T00:00:00Z"


@dataclass
class FakeDeployment:
    id: str
    audience_id: str
    entry: FakeEntry
    settings: dict[str, Any]
    created: str
    effective: str = "scheduled"
    requested: str = "none"
    reasons: list[str] = field(default_factory=list)
    reads: int = 0


def managed(dev: FakeDevice) -> dict[str, Any]:
    return {
        "id": dev.id,
        "deviceName": dev.name,
        "operatingSystem": dev.operating_system,
        "osVersion": dev.build,
        "azureADDeviceId": dev.aad_id,
        "lastSyncDateTime": dev.last_sync,
        "complianceState": "compliant",
        "managementState": "managed",
        "deviceType": "windowsRT",
    }


def ring_state(dev: FakeDevice) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.windowsUpdateState",
        "id": f"s-{dev.id}",
        "deviceId": dev.id,
        "deviceDisplayName": dev.name,
        "status": dev.ring_status,
        "qualityUpdateVersion": dev.build,
        "featureUpdateVersion": "23H2",
        "lastScanDateTime": dev.last_sync,
        "lastSyncDateTime": dev.last_sync,
    }


def asset(dev: FakeDevice) -> dict[str, Any]:
    errors = (
        []
        if dev.asset_error is None
        else [
            {
                "@odata.type": "#microsoft.graph.windowsUpdates.azureADDeviceRegistrationError",
                "reason": dev.asset_error,
            }
        ]
    )
    return {
        "@odata.type": "#microsoft.graph.windowsUpdates.azureADDevice",
        "id": dev.aad_id,
        "errors": errors,
        "enrollments": [
            {
                "@odata.type": "#microsoft.graph.windowsUpdates.updateManagementEnrollment",
                "updateCategory": "quality",
            }
        ],
    }


def entry(e: FakeEntry, expand: bool) -> dict[str, Any]:
    cve = (
        None
        if e.severity is None
        else {
            "maxSeverity": e.severity,
            "maxBaseScore": e.base_score,
            "exploitedCves": [
                {
                    "number": c,
                    "url": f"https://msrc.microsoft.com/update-guide/vulnerability/{c}",
                }
                for c in e.cves
            ],
        }
    )
    out: dict[str, Any] = {
        "@odata.type": QUALITY,
        "id": e.id,
        "displayName": f"{e.short_name} SecurityUpdate for Windows 10 and later",
        "releaseDateTime": e.release,
        "deployableUntilDateTime": None,
        "isExpeditable": e.expeditable,
        "qualityUpdateClassification": e.classification,
        "shortName": e.short_name,
        "catalogName": f"{e.short_name} Cumulative Update",
        "qualityUpdateCadence": "monthly",
        "cveSeverityInformation": cve,
    }
    if expand:
        out["productRevisions"] = e.revisions
    return out


def deployment(d: FakeDeployment) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.windowsUpdates.deployment",
        "id": d.id,
        "createdDateTime": d.created,
        "lastModifiedDateTime": now(),
        "state": {
            "effectiveValue": d.effective,
            "requestedValue": d.requested,
            "reasons": [{"value": r} for r in d.reasons],
        },
        "content": {
            "@odata.type": "#microsoft.graph.windowsUpdates.catalogContent",
            "catalogEntry": {"@odata.type": QUALITY, "id": d.entry.id},
        },
        "settings": d.settings,
        "audience": {"id": d.audience_id, "applicableContent": []},
    }


def revision(build: str, kb: str, release: str) -> dict[str, Any]:
    major, minor, number, ubr = (int(p) for p in build.split("."))
    product = "Windows 11" if number >= 22000 else "Windows 10"
    return {
        "id": build,
        "displayName": f"{product}, build {number}.{ubr}",
        "releaseDateTime": release,
        "version": "23H2",
        "product": product,
        "osBuild": {
            "majorVersion": major,
            "minorVersion": minor,
            "buildNumber": number,
            "updateBuildRevision": ubr,
        },
        "knowledgeBaseArticle": {"id": kb, "url": f"https://support.microsoft.com/help/{kb[2:]}"},
    }


def target(entry: FakeEntry, build: str) -> str | None:
    number = build.split(".")[2]
    return next((r["id"] for r in entry.revisions if r["id"].split(".")[2] == number), None)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    inner = {
        "date": now()[:19],
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    return web.json_response(
        {"error": {"code": code, "message": message, "innerError": inner}},
        status=status,
        headers=headers,
    )


def not_found() -> web.Response:
    return error(404, "ResourceNotFound", "The requested resource does not exist.")
