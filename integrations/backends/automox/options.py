"""The plan's options for the ``automox`` backend, checked without I/O.

backend: automox
automox:
  command_timeout: 14400   # optional: seconds a queued command may wait for its device
                           # (a disconnected device) before the device counts unreachable
  reboot: true             # optional (default true): PatchGate may queue "Reboot" commands
  require_compliant: false # optional: the tool health check also wants the device
                           # compliant with its Automox policies (its ``compliant`` field)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.backends import Capabilities

KNOWN_KEYS = ("command_timeout", "reboot", "require_compliant")


@dataclass(frozen=True)
class AutomoxOptions:
    command_timeout: float = 14400.0
    reboot: bool = True
    require_compliant: bool = False


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = sorted(str(k) for k in options if k not in KNOWN_KEYS)
    if unknown:
        problems.append(
            f"automox: unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_KEYS)})"
        )
    timeout = options.get("command_timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        problems.append(f"automox.command_timeout: seconds (a positive number), got {timeout!r}")
    for key in ("reboot", "require_compliant"):
        value = options.get(key)
        if value is not None and not isinstance(value, bool):
            problems.append(f"automox.{key}: true or false, got {value!r}")
    return problems


def parse_options(options: Mapping[str, Any]) -> AutomoxOptions:
    problems = check_options(options)
    if problems:
        raise ValueError("; ".join(problems))
    return AutomoxOptions(
        command_timeout=float(options.get("command_timeout") or 14400.0),
        reboot=bool(options.get("reboot", True)),
        require_compliant=bool(options.get("require_compliant", False)),
    )


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    return Capabilities(
        per_host=False,
        rollback=False,  # Automox has no command that installs an older version
        reboot=options.get("reboot", True) is not False,
        health=True,
        assess=True,
        inventory=True,
        status=True,  # the device's agent connection, reboot and compliance (GET /servers/{id})
        # halt: Automox documents no way to cancel a queued device command or a running
        # policy; a batch's commands run to their end.
        halt=False,
    )
