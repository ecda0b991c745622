"""PatchPlan: what to patch, where, in which rings, behind which gates; loaded from YAML.

Every model forbids unknown fields, so a typo is an error rather than a silently
ignored setting. :func:`load_plan` reads a file with ruamel.yaml's round-trip loader
(which keeps line numbers) and turns *every* validation error into one located line::

    plans/weekly.yml:14 rings[2].batch: expected a count or a percentage like "25%"

:func:`load_plans` loads a directory, collecting the errors of all files and refusing
two files that declare the same plan ``name:``.

A validated plan dumps to JSON (``plan.model_dump(mode="json")``) and validates back
to an equal plan; :func:`plan_hash` is the SHA-256 of that canonical JSON.

The room also holds the host selector language (:func:`parse_selector`) and the
emergency path's narrowing of a plan (:func:`emergency_plan`).
"""

from __future__ import annotations

from workflows.plans._backends import check_backends
from workflows.plans._bounds import MAX_PLAN_ALIASES, MAX_PLAN_BYTES, MAX_PLAN_DEPTH, MAX_PLAN_NODES
from workflows.plans._emergency import emergency_plan
from workflows.plans._fields import Amount, Duration, format_duration, parse_amount, parse_duration
from workflows.plans._loader import LoadedPlan, load_plan, load_plans, plan_hash, plan_json
from workflows.plans._model import (
    Blackout,
    ChangeSpec,
    EmergencyProfile,
    JiraTarget,
    PackageSelection,
    PatchPlan,
    RollbackPolicy,
    Schedule,
    SlackTarget,
    severity_rank,
)
from workflows.plans._rings import Approvers, GateSpec, HealthCheck, RingSpec
from workflows.plans._selectors import (
    MAX_SELECTOR_DEPTH,
    All,
    And,
    Not,
    Or,
    Selector,
    Term,
    parse_selector,
)

__all__ = [
    "MAX_PLAN_ALIASES",
    "MAX_PLAN_BYTES",
    "MAX_PLAN_DEPTH",
    "MAX_PLAN_NODES",
    "MAX_SELECTOR_DEPTH",
    "All",
    "Amount",
    "And",
    "Approvers",
    "Blackout",
    "ChangeSpec",
    "Duration",
    "EmergencyProfile",
    "GateSpec",
    "HealthCheck",
    "JiraTarget",
    "LoadedPlan",
    "Not",
    "Or",
    "PackageSelection",
    "PatchPlan",
    "RingSpec",
    "RollbackPolicy",
    "Schedule",
    "Selector",
    "SlackTarget",
    "Term",
    "check_backends",
    "emergency_plan",
    "format_duration",
    "load_plan",
    "load_plans",
    "parse_amount",
    "parse_duration",
    "parse_selector",
    "plan_hash",
    "plan_json",
    "severity_rank",
]
