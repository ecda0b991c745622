"""Reporting: evidence bundles (zip of CSVs, audit slice, summary.html, manifest.json),
time-to-patch and SLA figures, charts, and bundle verification. Pure of Slack and Jira.

    _history.py     host_assessments / fix_detections rows written with each assessment
    _figures.py     Period and the figures (pure), with their definitions
    _bundle.py      build_bundle(db, ReportRequest, out_dir) -> Bundle, with the queries of
                    _sections.py, _coverage.py, _events.py written through _zipout.py
    _charts.py      PNG charts (matplotlib Agg, imported lazily)
    _summary.py     summary.html (Jinja2 template summary.html.j2, imported lazily)
    _frameworks.py  the framework mapping (frameworks.yaml)
    _verify.py      verify_bundle(path) -> Verification
"""

from workflows.reports._bundle import Bundle, ReportRequest, build_bundle, bundle_name
from workflows.reports._facts import gate_context, package_changes, ring_results, summary_facts
from workflows.reports._figures import (
    Detection,
    Figures,
    PatchRun,
    Period,
    VersionCompare,
    fix_patched_at,
)
from workflows.reports._frameworks import FRAMEWORKS, load_mapping, mapping_for
from workflows.reports._history import (
    FindingLike,
    record_assessment,
    record_assessments,
)
from workflows.reports._verify import Verification, verify_bundle

__all__ = [
    "FRAMEWORKS",
    "Bundle",
    "Detection",
    "Figures",
    "FindingLike",
    "PatchRun",
    "Period",
    "ReportRequest",
    "Verification",
    "VersionCompare",
    "build_bundle",
    "bundle_name",
    "fix_patched_at",
    "gate_context",
    "load_mapping",
    "mapping_for",
    "package_changes",
    "record_assessment",
    "record_assessments",
    "ring_results",
    "summary_facts",
    "verify_bundle",
]
