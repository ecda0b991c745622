"""Reporting: evidence bundles (zip of CSVs, audit slice, summary.html, manifest.json),
time-to-patch and SLA figures, charts, and bundle verification. Pure of Slack and Jira.

    history.py      host_assessments / fix_detections rows written with each assessment
    figures.py      Period and the figures (pure), with their definitions
    queries + zip   bundle.py: build_bundle(db, ReportRequest, out_dir) -> Bundle
    charts.py       PNG charts (matplotlib Agg, imported lazily)
    summary.py      summary.html (Jinja2 template summary.html.j2)
    frameworks.py   the framework mapping (frameworks.yaml)
    verify.py       verify_bundle(path) -> Verification
"""

from workflows.reports._facts import (
    gate_context as gate_context,
)
from workflows.reports._facts import (
    package_changes as package_changes,
)
from workflows.reports._facts import (
    ring_results as ring_results,
)
from workflows.reports._facts import (
    summary_facts as summary_facts,
)
