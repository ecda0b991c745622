"""The bodies PatchGate sends to the deployment service, as its reference pages give
them (docs/intune.md lists each page)."""

from __future__ import annotations

from typing import Any

from integrations.backends.intune.journal import Rollout
from integrations.backends.intune.options import IntuneOptions

WU_TYPE = "#microsoft.graph.windowsUpdates."
QUALITY = "microsoft.graph.windowsUpdates.qualityUpdateCatalogEntry"


def asset(aad_id: str) -> dict[str, str]:
    return {"@odata.type": WU_TYPE + "azureADDevice", "id": aad_id}


def deployment(dep: Rollout, opts: IntuneOptions) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "@odata.type": WU_TYPE[1:] + "deploymentSettings",
        "expedite": {"isExpedited": dep.expedite},
    }
    if opts.days_until_forced_reboot is not None:
        settings["userExperience"] = {"daysUntilForcedReboot": opts.days_until_forced_reboot}
    if opts.monitoring:
        rule = {"@odata.type": WU_TYPE + "monitoringRule", **opts.monitoring}
        settings["monitoring"] = {"monitoringRules": [rule]}
    return {
        "@odata.type": WU_TYPE + "deployment",
        "content": {
            "@odata.type": WU_TYPE + "catalogContent",
            "catalogEntry": {"@odata.type": "#" + QUALITY, "id": dep.entry_id},
        },
        "settings": settings,
    }


def paused() -> dict[str, Any]:
    return {
        "@odata.type": WU_TYPE + "deployment",
        "state": {"@odata.type": WU_TYPE[1:] + "deploymentState", "requestedValue": "paused"},
    }
