"""The plan's options for the ``intune`` backend, checked without I/O.

backend: intune
intune:
  expedite: false              # deploy as an expedited quality update (the catalog entry
                               # must say isExpeditable; refused at submit otherwise)
  days_until_forced_reboot: 2  # optional: settings.userExperience.daysUntilForcedReboot
  monitoring:                  # optional: settings.monitoring.monitoringRules, one rule
    signal: rollback           # rollback | ineligible
    threshold: 20              # percent of the audience
    action: pauseDeployment    # pauseDeployment | alertError | offerFallback
  update_ring_id: <guid>       # optional: the Intune update ring whose deviceUpdateStates
                               # give each device's Windows Update status (failed,
                               # pendingReboot, upToDate); without it a device is judged
                               # by its OS build alone
  install_timeout: 172800      # seconds a device may take to reach the build
  checkin_max_age: 86400       # status: a device not synced for longer is not ok
  classification: security     # assessment: security | all quality updates
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workflows.backends import Capabilities

KNOWN_KEYS = (
    "expedite",
    "days_until_forced_reboot",
    "monitoring",
    "update_ring_id",
    "install_timeout",
    "checkin_max_age",
    "classification",
)
SIGNALS = ("rollback", "ineligible")
ACTIONS = ("pauseDeployment", "alertError", "offerFallback")


@dataclass(frozen=True)
class IntuneOptions:
    expedite: bool = False
    days_until_forced_reboot: int | None = None
    monitoring: Mapping[str, Any] = field(default_factory=dict)
    update_ring_id: str | None = None
    install_timeout: float = 172800.0
    checkin_max_age: float = 86400.0
    classification: str = "security"


def _seconds(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
    ):
        return f"intune.{key}: seconds (a positive number), got {value!r}"
    return None


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"intune: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    if not isinstance(options.get("expedite", False), bool):
        problems.append(f"intune.expedite: true or false, got {options['expedite']!r}")
    days = options.get("days_until_forced_reboot")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 30
    ):
        problems.append(f"intune.days_until_forced_reboot: 0 to 30 days, got {days!r}")
    monitoring = options.get("monitoring")
    if monitoring is not None:
        if not isinstance(monitoring, Mapping):
            problems.append("intune.monitoring: a mapping of signal, threshold, action")
        else:
            if monitoring.get("signal") not in SIGNALS:
                problems.append(f"intune.monitoring.signal: one of {', '.join(SIGNALS)}")
            if monitoring.get("action") not in ACTIONS:
                problems.append(f"intune.monitoring.action: one of {', '.join(ACTIONS)}")
            threshold = monitoring.get("threshold")
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int)
                or not (1 <= threshold <= 100)
            ):
                problems.append(f"intune.monitoring.threshold: 1 to 100 percent, got {threshold!r}")
    ring = options.get("update_ring_id")
    if ring is not None and (not isinstance(ring, str) or not ring.strip() or "/" in ring):
        problems.append(f"intune.update_ring_id: an Intune configuration id, got {ring!r}")
    problems += [p for k in ("install_timeout", "checkin_max_age") if (p := _seconds(options, k))]
    if options.get("classification", "security") not in ("security", "all"):
        problems.append(
            f"intune.classification: security or all, got {options['classification']!r}"
        )
    return problems


def parse_options(options: Mapping[str, Any]) -> IntuneOptions:
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))
    days = options.get("days_until_forced_reboot")
    return IntuneOptions(
        expedite=bool(options.get("expedite", False)),
        days_until_forced_reboot=None if days is None else int(days),
        monitoring=dict(options.get("monitoring") or {}),
        update_ring_id=options.get("update_ring_id"),
        install_timeout=float(options.get("install_timeout") or 172800.0),
        checkin_max_age=float(options.get("checkin_max_age") or 86400.0),
        classification=str(options.get("classification", "security")),
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    return Capabilities(
        per_host=False,
        rollback=False,  # the deployment service offers updates; it cannot uninstall one
        reboot=False,  # Graph has no reboot action in this namespace
        health=True,
        assess=True,
        inventory=True,
        reboots_itself=True,  # Windows restarts to finish the update (daysUntilForcedReboot)
        status=True,
        halt=True,
    )
