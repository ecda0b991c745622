"""A report over a period that `audit prune` cut into says so, and its slice still
verifies alone from the first remaining event's predecessor hash."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

from tests.reportkit import PERIOD, drive_rollout
from workflows import audit
from workflows.db import Database
from workflows.reports import Period, ReportRequest, build_bundle, verify_bundle

UTC = dt.UTC
CUT = dt.datetime(2026, 1, 4, 5, 0, tzinfo=UTC)  # between the dev/staging and prod work


async def test_a_period_cut_by_a_prune_is_marked_and_still_verifies(
    db: Database, tmp_path: Path
) -> None:
    await drive_rollout(db)
    pruned = await audit.prune(
        db,
        before=CUT,
        now=dt.datetime(2026, 6, 1, tzinfo=UTC),
        archive_dir=tmp_path / "archive",
        key=b"k" * 32,
        actor="U0ADMIN",
        min_age=dt.timedelta(days=1),
    )
    assert pruned.count > 0

    bundle = await build_bundle(db, ReportRequest(PERIOD), tmp_path / "out")
    audit_part = bundle.manifest["audit"]
    assert audit_part["pruned"]["before"] == "2026-01-04T05:00:00Z"
    assert audit_part["pruned"]["archived_events"] == pruned.count
    assert audit_part["slice"]["first_seq"] == pruned.count + 1
    with zipfile.ZipFile(bundle.path) as archive:
        html = archive.read("summary.html").decode()
        anchor = json.loads(archive.read("events.jsonl").decode().splitlines()[0])["anchor"]
    assert "Period partly pruned." in html and "2026-01-04T05:00:00Z" in html
    assert anchor["seq"] == pruned.count and anchor["prev_hash"] != "0" * 64
    result = verify_bundle(bundle.path)
    assert result.ok, result.problems

    later = Period(CUT, PERIOD.until)
    after_cut = await build_bundle(db, ReportRequest(later), tmp_path / "later")
    assert after_cut.manifest["audit"]["pruned"] is None
