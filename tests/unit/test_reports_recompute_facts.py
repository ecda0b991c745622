"""`report verify` recomputes what issue 15 left pinned by the signature alone: host_runs'
packages, exit codes and times, approvals' gate kinds and gate decisions, and coverage's
patched and assessed columns, from the facts the engine now puts on its events. A bundle
of events written before those facts still verifies and says what it could not recompute.
On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.reportkit import PERIOD, drive_rollout
from tests.unit.test_reports_signed import csv_rows, csv_text, edit, keypair
from workflows import audit
from workflows.db import Database
from workflows.reports import ReportRequest, build_bundle, verify_bundle

# What the engine's events carried before this change
NEW_FIELDS = {
    "host.state": (
        "platform",
        "batch",
        "started",
        "finished",
        "before_versions",
        "after_versions",
        "exit_code",
        "left_over",
    ),
    "gate.state": ("kind",),
    "rollout.assessments_refreshed": ("assessed_at",),
}


def row_of(rows: list[dict[str, str]], **match: str) -> int:
    return next(i for i, r in enumerate(rows) if all(r[k] == v for k, v in match.items()))


def named(problems: list[str], start: str, *words: str) -> bool:
    return any(p.startswith(start) and all(w in p for w in words) for p in problems)


async def test_packages_exit_codes_gate_kinds_and_coverage_edited_consistently_are_named_by_row(
    db: Database, tmp_path: Path
) -> None:
    signer, public = keypair(tmp_path, "signing")
    await drive_rollout(db)
    path = (await build_bundle(db, ReportRequest(PERIOD, signer=signer), tmp_path / "out")).path
    intact = verify_bundle(path, public_keys=[public])
    assert intact.problems == [] and intact.not_recomputed == []

    runs = csv_rows(path, "host_runs.csv")
    dev = row_of(runs, host="dev-01")
    assert runs[dev]["packages"] and runs[dev]["exit_code"] == "0"
    runs[dev]["packages"] = runs[dev]["packages"].replace("3.0.13-1", "3.0.14-1")
    prod6 = row_of(runs, host="prod-06")
    assert "(rolled back to" in runs[prod6]["packages"]
    runs[prod6]["packages"] = runs[prod6]["packages"].split(" (rolled back")[0]
    runs[prod6]["exit_code"] = "1"
    runs[prod6]["finished"] = "2026-01-04T09:00:00Z"

    approvals = csv_rows(path, "approvals.csv")
    vote = row_of(approvals, decision="approve")
    assert approvals[vote]["gate_kind"] == "approval"
    approvals[vote]["gate_kind"] = "auto"
    decided = row_of(approvals, decision="gate approved")
    approvals[decided]["who"] = "U0MALLORY"

    coverage = csv_rows(path, "coverage.csv")
    patched = row_of(coverage, host="dev-01")
    assert coverage[patched]["patched_in_period"] == "yes"
    coverage[patched]["patched_in_period"] = "no"
    assessed = row_of(coverage, host="prod-01")
    assert coverage[assessed]["assessed_in_period"] == "yes"
    coverage[assessed]["assessed_in_period"] = "no"
    coverage[assessed]["gaps"] = "not assessed in the period"
    coverage[assessed]["last_assessed"] = "2025-12-31T00:00:00Z"

    bad = tmp_path / "edited.zip"
    edit(
        path,
        bad,
        change={
            "host_runs.csv": csv_text(runs),
            "approvals.csv": csv_text(approvals),
            "coverage.csv": csv_text(coverage),
        },
    )
    signed = verify_bundle(bad, public_keys=[public]).problems
    assert "manifest.sig: the signature of manifest.json does not verify" in signed
    for problems in (signed, verify_bundle(bad).problems):  # and with no key at all
        assert named(problems, f"host_runs.csv row {dev + 2} (rollout ", "packages is", "3.0.14-1")
        assert named(problems, f"host_runs.csv row {prod6 + 2} (", "packages is", "rolled back")
        assert named(problems, f"host_runs.csv row {prod6 + 2} (", "exit_code is '1'")
        assert named(problems, f"host_runs.csv row {prod6 + 2} (", "finished is")
        assert named(problems, f"approvals.csv row {vote + 2} (gate ", "gate_kind is 'auto'")
        assert named(problems, f"approvals.csv row {decided + 2} (gate ", "U0MALLORY", "gate.state")
        assert named(problems, f"coverage.csv row {patched + 2} (dev-01)", "patched_in_period")
        assert named(problems, f"coverage.csv row {assessed + 2} (prod-01)", "assessed_in_period")
        assert named(problems, f"coverage.csv row {assessed + 2} (prod-01)", "last_assessed")


async def test_a_coverage_row_claiming_a_patch_no_event_records_is_named(
    db: Database, tmp_path: Path
) -> None:
    await drive_rollout(db)
    path = (await build_bundle(db, ReportRequest(PERIOD), tmp_path / "out")).path
    coverage = csv_rows(path, "coverage.csv")
    assert {r["host"] for r in coverage if r["patched_in_period"] == "yes"}
    # a host the rollout never patched healthy (prod-06 was rolled back) said patched
    unpatched = row_of(coverage, host="prod-06")
    assert coverage[unpatched]["patched_in_period"] == "no"
    coverage[unpatched]["patched_in_period"] = "yes"
    coverage[unpatched]["last_patched"] = "2026-01-04T08:30:00Z"
    bad = tmp_path / "edited.zip"
    edit(path, bad, change={"coverage.csv": csv_text(coverage)})
    problems = verify_bundle(bad).problems
    assert named(problems, f"coverage.csv row {unpatched + 2} (prod-06)", "patched_in_period")
    assert named(problems, f"coverage.csv row {unpatched + 2} (prod-06)", "last_patched")


async def test_a_bundle_of_events_without_the_new_facts_verifies_and_says_what_it_did_not_recompute(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine as it was: the same events without the facts added for report verify.
    real_append = audit.append

    async def older_append(session: Any, *, kind: str, data: Mapping[str, Any], **kw: Any) -> Any:
        left = {k: v for k, v in data.items() if k not in NEW_FIELDS.get(kind, ())}
        return await real_append(session, kind=kind, data=left, **kw)

    monkeypatch.setattr(audit, "append", older_append)
    await drive_rollout(db)
    monkeypatch.undo()
    path = (await build_bundle(db, ReportRequest(PERIOD), tmp_path / "out")).path
    result = verify_bundle(path)
    assert result.problems == []
    assert any(n.startswith("host_runs.csv: ") and "exit_code" in n for n in result.not_recomputed)
    # gate.opened always named the kind: only a gate opened before the period would lack it
    runs = csv_rows(path, "host_runs.csv")
    dev = row_of(runs, host="dev-01")
    runs[dev]["exit_code"] = "7"  # not recomputable from these events: pinned by the signature
    bad = tmp_path / "edited.zip"
    edit(path, bad, change={"host_runs.csv": csv_text(runs)})
    assert verify_bundle(bad).problems == []
