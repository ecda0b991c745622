"""A fix closed by a rollout and found missing again later (a host restored from an old
backup) is open again in the evidence, with its history in coverage.csv."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

from tests.reportkit import PERIOD, PUBLISHED, drive_rollout, finding
from workflows import assessment
from workflows.db import Database, unit_of_work
from workflows.reports import ReportRequest, build_bundle

UTC = dt.UTC
CLEAN = dt.datetime(2026, 1, 6, tzinfo=UTC)  # assessed after the rollout: nothing to fix
RESTORED = dt.datetime(2026, 1, 10, tzinfo=UTC)  # restored from a backup of December


def openssl_fix(host: str) -> assessment.Finding:
    return finding(
        host,
        "openssl",
        "3.0.13-1",
        current="3.0.11-1",
        severity="critical",
        cves=("CVE-2026-0001",),
        published=PUBLISHED,
    )


async def coverage(db: Database, out: Path) -> tuple[dict[str, dict[str, str]], dict]:
    bundle = await build_bundle(db, ReportRequest(PERIOD), out)
    with zipfile.ZipFile(bundle.path) as archive:
        text = archive.read("coverage.csv").decode()
    rows = {r["host"]: r for r in csv.DictReader(io.StringIO(text))}
    return rows, bundle.figures


async def test_a_fix_found_again_after_its_rollout_is_counted_open_with_its_history(
    db: Database, tmp_path: Path
) -> None:
    await drive_rollout(db)  # dev-01 gets openssl 3.0.13-1 on 2026-01-04 02:00
    async with unit_of_work(db) as session:
        await assessment.store(session, host="dev-01", at=CLEAN, findings=[])
    before, figures_before = await coverage(db, tmp_path / "before")
    assert before["dev-01"]["fixes_open_at_end"] == "0"
    assert before["dev-01"]["reopened_fixes"] == ""

    async with unit_of_work(db) as session:
        await assessment.store(
            session, host="dev-01", at=RESTORED, findings=[openssl_fix("dev-01")]
        )
    after, figures_after = await coverage(db, tmp_path / "after")
    assert after["dev-01"]["fixes_open_at_end"] == "1"
    assert after["dev-01"]["reopened_fixes"] == (
        "openssl 3.0.13-1: detected 2026-01-01T00:00:00Z, closed 2026-01-04T02:00:00Z, "
        "reopened 2026-01-10T00:00:00Z"
    )
    [critical_before] = [s for s in figures_before["time_to_patch"] if s["severity"] == "critical"]
    [critical_after] = [s for s in figures_after["time_to_patch"] if s["severity"] == "critical"]
    assert critical_after["open_at_end"] == critical_before["open_at_end"] + 1
    # the first episode's time to patch still counts: the rollout did patch it once
    assert critical_after["fixes_patched"] == critical_before["fixes_patched"]


async def test_a_fix_still_listed_before_its_rollout_is_not_reopened(
    db: Database, tmp_path: Path
) -> None:
    await drive_rollout(db)
    rows, _ = await coverage(db, tmp_path)
    assert all(r["reopened_fixes"] == "" for r in rows.values())
