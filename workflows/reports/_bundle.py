"""Build an evidence bundle: one zip of CSVs, the period's audit events, summary.html and
manifest.json, from one read snapshot of the database.

Rows are streamed (``yield_per``: server-side cursors on PostgreSQL) straight into the
zip, and per-host work goes in pages of hosts (``coverage.HOST_PAGE``), so memory does not grow
with the number of events or host runs. Output is deterministic: rows are sorted, zip
entries carry a fixed time and mode, JSON has sorted keys, and the build time is not
recorded, so two builds over the same data are byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflows import audit
from workflows.db import Database
from workflows.reports import _charts, _summary
from workflows.reports._coverage import write_coverage
from workflows.reports._events import Slice, audit_head, pruned_info, pruned_text, write_events
from workflows.reports._figures import Figures, Period, VersionCompare
from workflows.reports._frameworks import mapping_for
from workflows.reports._patchsets import write_patchsets
from workflows.reports._sections import (
    period_rollouts,
    write_approvals,
    write_exceptions,
    write_host_runs,
    write_rollouts,
)
from workflows.reports._zipout import ZipOut, dumps

FORMAT = "patchgate-evidence/1"
SIGNATURE = "manifest.sig"  # Ed25519 over manifest.json's bytes, outside the manifest
# deflate level 1: ~3x less CPU than the default 6 for ~15% larger zips (a quarter's
# events.jsonl is ~80 MB of text); any level is deterministic.
COMPRESS_LEVEL = 1
DEFAULT_SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180}
TTP_START = "the advisory's publication when known, else the first assessment that found the fix"

ABOUT = {
    "rollouts.csv": "rollouts active in the period, with host counts by result",
    "host_runs.csv": "every host run of those rollouts: packages from -> to, times, result, "
    "updates it left behind (not fully patched)",
    "patchset.csv": "every entry of those rollouts' pinned patch sets: a package at its "
    "version, or a vendor update with its KB, catalog id, title and classification",
    "approvals.csv": "votes on gates open in the period, and each gate's decision",
    "exceptions.csv": "exceptions in force at some time in the period",
    "coverage.csv": "every known host: last assessed and patched, open fixes, gaps",
    "events.jsonl": "the period's audit events with chain hashes; line 1 is the anchor",
    "summary.html": "this page",
}


@dataclass(frozen=True)
class ReportRequest:
    period: Period
    framework: str | None = None
    sla_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SLA_DAYS))
    compare: VersionCompare | None = None
    signer: audit.Signer | None = None  # signs manifest.json (PATCHGATE_SIGNING_KEY)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str

    @property
    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = self.manifest["figures"]
        return figures


def bundle_name(request: ReportRequest) -> str:
    since, until = request.period.since, request.period.until
    suffix = f"-{request.framework}" if request.framework else ""
    return f"patchgate-evidence-{since:%Y%m%dT%H%M}-{until:%Y%m%dT%H%M}{suffix}.zip"


# --- the build --------------------------------------------------------------------------


def _paths(out_dir: Path, request: ReportRequest) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / bundle_name(request)
    return final, final.with_name(final.name + ".partial")


async def build_bundle(db: Database, request: ReportRequest, out_dir: Path) -> Bundle:
    """Write the bundle into ``out_dir`` (created if missing) and return its manifest.

    Raises AuditChainBroken (nothing written) if the period's events do not verify.
    """
    mapping = mapping_for(request.framework)
    period = request.period
    final, partial = _paths(out_dir, request)
    figures = Figures(period=period, sla_days=dict(request.sla_days))
    try:
        async with db.read_sessions() as session:
            try:
                if db.dialect == "postgresql":
                    await session.connection(
                        execution_options={"isolation_level": "REPEATABLE READ"}
                    )
                with zipfile.ZipFile(partial, "w", compresslevel=COMPRESS_LEVEL) as archive:
                    out = ZipOut(archive)
                    head = await audit_head(session)
                    await write_rollouts(session, out, period, figures)
                    await write_host_runs(session, out, period, figures)
                    await write_patchsets(session, out, period_rollouts(period))
                    await write_approvals(session, out, period, figures)
                    await write_exceptions(session, out, period, figures)
                    await write_coverage(
                        session, out, figures, sla_days=request.sla_days, compare=request.compare
                    )
                    chain = await write_events(session, out, period)
                    pruned = await pruned_info(session, period)
                    manifest = _write_rest(out, request, mapping, figures, head, chain, pruned)
            finally:
                await session.rollback()
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    digest = hashlib.sha256(dumps(manifest).encode("utf-8")).hexdigest()
    return Bundle(final, manifest, digest)


def _write_rest(
    out: ZipOut,
    request: ReportRequest,
    mapping: Mapping[str, Any],
    figures: Figures,
    head: Mapping[str, Any],
    chain: Slice,
    pruned: Mapping[str, Any] | None,
) -> dict[str, Any]:
    period = request.period
    figures_json = figures.as_json()
    audit_json = {"head": dict(head), "slice": chain.as_json(), "pruned": pruned}
    ttp_png = _charts.time_to_patch_chart(period, figures.ttp_series())
    coverage_png = _charts.coverage_chart(period, figures.coverage_series())
    files = [
        {"name": name, "rows": meta["rows"], "about": ABOUT[name]}
        for name, meta in out.files.items()
    ]
    html = _summary.render(
        period=period,
        figures=figures_json,
        charts={"time_to_patch": ttp_png, "coverage": coverage_png},
        mapping=mapping,
        audit=audit_json,
        pruned=pruned_text(pruned),
        files=files,
        sla_days=dict(request.sla_days),
    )
    with out.entry("summary.html") as sink:
        sink.write(html)
    manifest = {
        "format": FORMAT,
        "period": {
            "since": audit.format_time(period.since),
            "until": audit.format_time(period.until),
        },
        "framework": request.framework or "all",
        "framework_mapping": mapping,
        "sla_days": dict(sorted(request.sla_days.items())),
        "time_to_patch_starts_at": TTP_START,
        "files": {name: dict(meta) for name, meta in sorted(out.files.items())},
        "audit": audit_json,
        "figures": figures_json,
    }
    if request.signer is not None:
        manifest["signing"] = {"algorithm": audit.ALGORITHM, "key_id": request.signer.key_id}
    text = dumps(manifest)
    with out.entry("manifest.json") as sink:
        sink.write(text)
    out.files.pop("manifest.json")
    if request.signer is not None:
        signature = {
            "algorithm": audit.ALGORITHM,
            "key_id": request.signer.key_id,
            "signature": request.signer.sign(text.encode("utf-8")),
        }
        with out.entry(SIGNATURE) as sink:
            sink.write(dumps(signature))
        out.files.pop(SIGNATURE)
    return manifest
