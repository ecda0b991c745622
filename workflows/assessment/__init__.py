"""Assessment: which fixes each host needs, how urgent each is, and what a baseline takes.

Inputs are pure data: a host (inventory attributes, platform facts), its upgradable
packages, and advisory records (OSV files for Debian/Ubuntu, the hosts' own dnf/zypper
advisory data) plus a known-exploited list. The output per host and fix is a
:class:`Finding` with a **risk score** (0-100) and its reasons:

==========================  ==========================================================
severity / CVSS             CVSS base score x 5 (0-50); without CVSS the severity
                            stands in (critical 9.5, high 7.5, medium 5, low 2.5,
                            unknown 1) -- a security update with no advisory scores 1;
                            vendor words are mapped (Microsoft's Important -> high,
                            Moderate -> medium), a score outside 0-10 is ignored
known exploited (KEV)       +25
internet-facing host        +10
host criticality            critical +15, high +10, medium +5, low 0, unset +5
days since publication      +1 per 3 days, at most +10 (30 days)
==========================  ==========================================================

capped at 100. A host's risk is that of its riskiest fix. A baseline
(:class:`~workflows.plans.PackageSelection`) then selects fixes or leaves them out,
each with its reason (:func:`apply_baseline`). Stored rows live in the
``assessments`` table; the latest row per host and package is the current assessment.

The room's modules: ``_risk`` (fixes and their scores), ``_baseline``, ``_stored`` (the
``assessments`` rows), ``_patchset`` (the pinned patch set and its hash), ``_coverage``
(hosts PatchGate cannot vouch for), ``_merge`` (one platform's fresh assessments merged
into each host's share of the pinned set) and ``_live`` (assessing a host now).
"""

from __future__ import annotations

from workflows.assessment._baseline import (
    BaselineResult,
    HostsBaseline,
    apply_baseline,
    baseline_for,
    refusal_without_assessment,
    render_baseline,
)
from workflows.assessment._coverage import coverage_gaps
from workflows.assessment._live import HostAssessor, LiveAssessor, reported_findings
from workflows.assessment._merge import PlatformShares, carry_advisories, merge_selected
from workflows.assessment._patchset import (
    Updates,
    describe,
    patchset_hash,
    pin,
    select_packages,
    update_identities,
)
from workflows.assessment._risk import (
    AdvisoryRecord,
    Finding,
    canonical_severity,
    find_fixes,
    severity_from_cvss,
)
from workflows.assessment._stored import affected_by, latest, stale_hosts, store, store_many
from workflows.hostos import patch_label

__all__ = [
    "AdvisoryRecord",
    "BaselineResult",
    "Finding",
    "HostAssessor",
    "HostsBaseline",
    "LiveAssessor",
    "PlatformShares",
    "Updates",
    "affected_by",
    "apply_baseline",
    "baseline_for",
    "canonical_severity",
    "carry_advisories",
    "coverage_gaps",
    "describe",
    "find_fixes",
    "latest",
    "merge_selected",
    "patch_label",
    "patchset_hash",
    "pin",
    "refusal_without_assessment",
    "render_baseline",
    "reported_findings",
    "select_packages",
    "severity_from_cvss",
    "stale_hosts",
    "store",
    "store_many",
    "update_identities",
]
