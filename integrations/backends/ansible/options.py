"""The plan's options for the Ansible backend: checked (check_options) and turned into
capabilities (pure: presence of keys only).

    backends:
      ansible:
        project_dir: /etc/patchgate/ansible   # the directory holding the playbooks
        playbook: patch.yml                   # required: a file name in project_dir
        rollback_playbook: rollback.yml       # -> capabilities.rollback
        reboot_playbook: reboot.yml           # -> capabilities.reboot
        assess_playbook: assess.yml           # -> capabilities.assess
        playbook_reboots: false               # the patch playbook reboots by itself
        inventory: /etc/ansible/hosts.yml     # -> capabilities.inventory; else generated
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.backends import Capabilities

PLAYBOOK_KEYS = ("playbook", "rollback_playbook", "reboot_playbook", "assess_playbook")
KNOWN = (*PLAYBOOK_KEYS, "project_dir", "playbook_reboots", "inventory")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml$")


def capabilities(options: Mapping[str, Any]) -> Capabilities:
    return Capabilities(
        per_host=False,
        rollback=bool(options.get("rollback_playbook")),
        reboot=bool(options.get("reboot_playbook")) or options.get("playbook_reboots") is True,
        health=True,
        assess=bool(options.get("assess_playbook")),
        inventory=bool(options.get("inventory")),
    )


def check_options(options: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in options:
        if key not in KNOWN:
            problems.append(f"ansible: unknown option {key!r} (known: {', '.join(KNOWN)})")
    project = options.get("project_dir")
    project_ok = False
    if not isinstance(project, str) or not project:
        problems.append("ansible: project_dir is required (the directory holding the playbooks)")
    elif not Path(project).is_dir():
        problems.append(f"ansible: project_dir {project!r} is not a directory")
    else:
        project_ok = True
    if not options.get("playbook"):
        problems.append("ansible: playbook is required (a file name in project_dir)")
    for key in PLAYBOOK_KEYS:
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not _NAME.match(value):
            problems.append(
                f"ansible: {key} must be a file name ending in .yml or .yaml, "
                f"without a directory (got {value!r})"
            )
        elif project_ok and not (Path(str(project)) / value).is_file():
            problems.append(f"ansible: {key} {value!r} is not a file in {project}")
    reboots = options.get("playbook_reboots")
    if reboots is not None and not isinstance(reboots, bool):
        problems.append(f"ansible: playbook_reboots must be true or false (got {reboots!r})")
    inventory = options.get("inventory")
    if inventory is not None and (not isinstance(inventory, str) or not Path(inventory).exists()):
        problems.append(f"ansible: inventory {inventory!r} does not exist")
    return problems
