"""The framework mapping (``frameworks.yaml`` beside this module, shipped in the wheel).

:func:`load_mapping` reads and checks it; :func:`mapping_for` narrows it to one framework
(``--framework``) or keeps them all.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from workflows.errors import InputError

FRAMEWORKS = ("soc2", "pci", "hipaa", "iso27001")
SECTIONS = frozenset(
    {
        "rollouts.csv",
        "host_runs.csv",
        "approvals.csv",
        "exceptions.csv",
        "coverage.csv",
        "events.jsonl",
        "figure:time_to_patch",
        "figure:sla",
        "figure:coverage",
        "figure:rollback",
        "figure:exposure",
        "figure:approvals",
    }
)


def load_mapping(text: str | None = None) -> dict[str, Any]:
    """The mapping as data; every control names an id, a title, judgement and known sections."""
    if text is None:
        text = resources.files("workflows.reports").joinpath("frameworks.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    frameworks = data.get("frameworks") if isinstance(data, dict) else None
    if not isinstance(frameworks, dict) or set(frameworks) != set(FRAMEWORKS):
        raise ValueError(f"frameworks.yaml must map exactly {', '.join(FRAMEWORKS)}")
    for key, framework in frameworks.items():
        for control in framework["controls"]:
            unknown = set(control["sections"]) - SECTIONS
            if unknown or not isinstance(control["judgement"], bool) or not control["id"]:
                raise ValueError(f"frameworks.yaml: {key} {control.get('id')!r} is malformed")
    return {"version": data["version"], "frameworks": frameworks}


def mapping_for(framework: str | None) -> dict[str, Any]:
    mapping = load_mapping()
    if framework is None:
        return mapping
    if framework not in FRAMEWORKS:
        raise InputError(f"unknown framework {framework!r} (one of {', '.join(FRAMEWORKS)})")
    return {
        "version": mapping["version"],
        "frameworks": {framework: mapping["frameworks"][framework]},
    }
