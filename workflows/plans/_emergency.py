"""The emergency path's plan: an ordinary plan narrowed to the hosts one CVE affects and
shaped by the plan's ``emergency`` profile. Shared by ``patchgate emergency`` and
``/patch emergency``."""

from __future__ import annotations

from typing import Any

from workflows.errors import InputError
from workflows.plans._model import PatchPlan


def emergency_plan(plan: PatchPlan, hosts: list[str], packages: list[str]) -> PatchPlan:
    """The plan narrowed to ``hosts`` and ``packages``, shaped by its emergency profile."""
    profile = plan.emergency
    if profile is None:
        raise InputError(f"plan {plan.name!r} has no emergency: profile")
    only = " or ".join(f"host:{h}" for h in hosts)
    rings = []
    for ring in plan.rings:
        if ring.name in profile.skip_rings:
            continue
        gate = ring.gate
        if gate.type == "approval" and profile.approvers is not None:
            gate = gate.model_copy(
                update={"approvers": profile.approvers, "quorum": profile.quorum}
            )
        if gate.type == "approval" and profile.gate_timeout is not None:
            gate = gate.model_copy(update={"timeout": profile.gate_timeout})
        changes: dict[str, Any] = {
            "hosts": f"({ring.hosts}) and ({only})",
            "batch": profile.batch,
            "gate": gate,
        }
        if profile.failure_budget is not None:
            changes["failure_budget"] = profile.failure_budget
        rings.append(ring.model_dump(mode="json") | _dump(changes))
    data = plan.model_dump(mode="json")
    data["rings"] = rings
    data["emergency"] = {**data["emergency"], "skip_rings": []}  # already applied
    data["schedule"] = None  # an emergency does not wait for a window
    data["packages"] = {
        **data["packages"],
        "include": sorted(packages),
        "security_only": False,
        "min_severity": None,
        "approve_after_days": None,
    }
    return PatchPlan.model_validate(data)


def _dump(changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in changes.items():
        dump = getattr(value, "model_dump", None)
        out[key] = dump(mode="json") if dump else (str(value) if key == "hosts" else value)
    return out
