"""The plan's options for the ``ninjaone`` backend, checked without I/O.

backend: ninjaone
ninjaone:
  apply_timeout: 14400        # optional: seconds an apply may take before a device whose
                              # pinned patches have no install record counts unreachable
                              # (offline) or failed (online)
  scan_after: true            # optional (default true): an OS patch scan once a device's
                              # result is in, so NinjaOne's pending list is fresh
  contact_age: 3600           # optional: seconds since lastContact a device may be quiet
                              # and still count well in ``status`` (the tool health check)
  reboots_by_policy: false    # optional: the devices' NinjaOne policy reboots after
                              # patching (a plan's ``reboot:`` is then NinjaOne's business)
  device_filter: "class in (WINDOWS_SERVER,WINDOWS_WORKSTATION)"
                              # optional: NinjaOne's ``df`` for the inventory import
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.backends import Capabilities

KNOWN_KEYS = ("apply_timeout", "scan_after", "contact_age", "reboots_by_policy", "device_filter")


@dataclass(frozen=True)
class NinjaOneOptions:
    apply_timeout: float = 14400.0
    scan_after: bool = True
    contact_age: float = 3600.0
    reboots_by_policy: bool = False
    device_filter: str = ""


def _seconds(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or (
        not isinstance(value, bool) and isinstance(value, int | float) and value > 0
    ):
        return None
    return f"ninjaone.{key}: seconds (a positive number), got {value!r}"


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"ninjaone: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    for key in ("apply_timeout", "contact_age"):
        problem = _seconds(options, key)
        if problem:
            problems.append(problem)
    for key in ("scan_after", "reboots_by_policy"):
        if options.get(key) is not None and not isinstance(options[key], bool):
            problems.append(f"ninjaone.{key}: true or false, got {options[key]!r}")
    df = options.get("device_filter")
    if df is not None and (not isinstance(df, str) or len(df) > 500 or "\n" in df):
        problems.append(f"ninjaone.device_filter: a NinjaOne device filter (one line), got {df!r}")
    return problems


def parse_options(options: Mapping[str, Any]) -> NinjaOneOptions:
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))
    return NinjaOneOptions(
        apply_timeout=float(options.get("apply_timeout") or 14400.0),
        scan_after=bool(options.get("scan_after", True)),
        contact_age=float(options.get("contact_age") or 3600.0),
        reboots_by_policy=bool(options.get("reboots_by_policy", False)),
        device_filter=str(options.get("device_filter") or "").strip(),
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    return Capabilities(
        per_host=False,
        rollback=False,  # the public API has no uninstall of an OS patch
        reboot=False,  # PatchGate asks NinjaOne for no reboot (the policy may reboot)
        health=True,
        assess=True,
        inventory=True,
        reboots_itself=options.get("reboots_by_policy") is True,
        status=True,  # device offline / lastContact / os.needsReboot
        halt=False,  # the public API documents no way to cancel a running patch apply
    )
