"""The plan's options for the ``satellite`` backend, checked without I/O.

backend: satellite
satellite:
  organization_id: 1            # optional: scope hosts and job invocations to it
  host_search: "hostgroup = RHEL9"   # optional: a Foreman search narrowing hosts()
  reboot: true                  # optional (default true): reboots through a job invocation
  apply_feature: katello_package_install   # the remote execution feature installing packages
  reboot_feature: power_action  # the remote execution feature rebooting (input action=restart)
  concurrency_level: 20         # optional: the job invocation's concurrency limit
  stale_checkin_hours: 24       # a host not checked in for longer is a coverage gap
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflows.backends import Capabilities

KNOWN_KEYS = (
    "organization_id",
    "host_search",
    "reboot",
    "apply_feature",
    "reboot_feature",
    "concurrency_level",
    "stale_checkin_hours",
)
_FEATURE = re.compile(r"[a-z][a-z0-9_]{0,99}")
# A host name usable in a scoped search list ``name ^ (a,b)``: a DNS-like name.
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


@dataclass(frozen=True)
class SatelliteOptions:
    organization_id: int | None = None
    host_search: str | None = None
    reboot: bool = True
    apply_feature: str = "katello_package_install"
    reboot_feature: str = "power_action"
    concurrency_level: int | None = None
    stale_checkin_hours: float = 24.0


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"satellite: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    for key in ("organization_id", "concurrency_level"):
        if options.get(key) is not None and not _positive_int(options[key]):
            problems.append(f"satellite.{key}: a positive integer, got {options[key]!r}")
    search = options.get("host_search")
    if search is not None and (not isinstance(search, str) or not search.strip()):
        problems.append(f"satellite.host_search: a Foreman search string, got {search!r}")
    if options.get("reboot") is not None and not isinstance(options["reboot"], bool):
        problems.append(f"satellite.reboot: true or false, got {options['reboot']!r}")
    for key in ("apply_feature", "reboot_feature"):
        value = options.get(key)
        if value is not None and (not isinstance(value, str) or not _FEATURE.fullmatch(value)):
            problems.append(f"satellite.{key}: a remote execution feature label, got {value!r}")
    hours = options.get("stale_checkin_hours")
    if hours is not None and (
        isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0
    ):
        problems.append(f"satellite.stale_checkin_hours: a positive number, got {hours!r}")
    return problems


def parse_options(options: Mapping[str, Any]) -> SatelliteOptions:
    """The options as a value; raises ValueError with every problem when they are bad."""
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))
    search = options.get("host_search")
    return SatelliteOptions(
        organization_id=options.get("organization_id"),
        host_search=search.strip() if isinstance(search, str) else None,
        reboot=bool(options.get("reboot", True)),
        apply_feature=str(options.get("apply_feature") or "katello_package_install"),
        reboot_feature=str(options.get("reboot_feature") or "power_action"),
        concurrency_level=options.get("concurrency_level"),
        stale_checkin_hours=float(options.get("stale_checkin_hours") or 24.0),
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    # rollback: Katello documents no job that puts back recorded package versions (its
    # package templates install, update and remove; a downgrade is not among them).
    return Capabilities(
        per_host=False,
        rollback=False,
        reboot=options.get("reboot", True) is not False,
        health=True,
        assess=True,
        inventory=True,
        status=True,  # the host's registration, check-in and global status (.status)
        halt=True,  # POST /api/job_invocations/:id/cancel
    )


def unsafe_host_names(names: Sequence[str]) -> list[str]:
    """Names that are not plain DNS-like names (they could change a search query)."""
    return [n for n in names if not _HOST_NAME.fullmatch(n)]
