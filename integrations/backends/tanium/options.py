"""The plan's options for the ``tanium`` backend, checked without I/O.

backend: tanium
tanium:
  restart: false                # the deployment's ``restart`` field: Tanium Patch restarts
                                # the endpoint after installing (the job reboots itself)
  window: 7200                  # seconds from the deployment's start to its end time
  result_timeout: 14400         # seconds an endpoint may go without a deployment result
                                # before it counts unreachable
  stale_after: 86400            # seconds since an endpoint was last seen (eidLastSeen)
                                # after which it is a coverage gap and its status not ok
  stable_wait: 30               # stableWaitTime of live sensor reads (source ts)
  override_maintenance_windows: false   # the deployment fields of the same names
  override_blocklists: false
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.backends import Capabilities

_SECONDS = {
    "window": 7200.0,
    "result_timeout": 14400.0,
    "stale_after": 86400.0,
    "stable_wait": 30.0,
}
_FLAGS = ("restart", "override_maintenance_windows", "override_blocklists")
KNOWN_KEYS = (*_FLAGS, *_SECONDS)


@dataclass(frozen=True)
class TaniumOptions:
    restart: bool = False
    window: float = 7200.0
    result_timeout: float = 14400.0
    stale_after: float = 86400.0
    stable_wait: float = 30.0
    override_maintenance_windows: bool = False
    override_blocklists: bool = False


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"tanium: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    for key in _SECONDS:
        value = options.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
        ):
            problems.append(f"tanium.{key}: seconds (a positive number), got {value!r}")
    for key in _FLAGS:
        value = options.get(key)
        if value is not None and not isinstance(value, bool):
            problems.append(f"tanium.{key}: true or false, got {value!r}")
    return problems


def parse_options(options: Mapping[str, Any]) -> TaniumOptions:
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))

    def sec(key: str) -> float:
        return float(options.get(key) or _SECONDS[key])

    return TaniumOptions(
        restart=options.get("restart") is True,
        window=sec("window"),
        result_timeout=sec("result_timeout"),
        stale_after=sec("stale_after"),
        stable_wait=sec("stable_wait"),
        override_maintenance_windows=options.get("override_maintenance_windows") is True,
        override_blocklists=options.get("override_blocklists") is True,
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    return Capabilities(
        per_host=False,
        # Tanium's public material shows install deployments only: no uninstall, no
        # reboot on its own, no way to stop a deployment (docs/tanium.md).
        rollback=False,
        reboot=False,
        reboots_itself=options.get("restart") is True,
        health=True,
        assess=True,
        inventory=True,
        status=True,
        halt=False,
    )
