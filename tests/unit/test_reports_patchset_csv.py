"""patchset.csv in a real bundle (issue 21): one row per pinned entry of a real
rollout, verified against its rollout.pinned event; an edit made consistently to the CSV
and manifest.json is still named by the recompute."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

from tests.reportkit import PERIOD, drive_rollout, rewrite
from workflows.db import Database
from workflows.reports import ReportRequest, build_bundle, verify_bundle


async def test_patchset_csv_lists_the_pinned_set_and_a_consistent_edit_is_still_named(
    db: Database, tmp_path: Path
) -> None:
    await drive_rollout(db)
    bundle = await build_bundle(db, ReportRequest(PERIOD), tmp_path / "one")
    with zipfile.ZipFile(bundle.path) as archive:
        text = archive.read("patchset.csv").decode()
        manifest = json.loads(archive.read("manifest.json"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["kind"] for r in rows} == {"package"}
    assert all(r["kb"] == r["title"] == "" for r in rows)
    assert manifest["files"]["patchset.csv"]["rows"] == len(rows)
    assert verify_bundle(bundle.path).ok

    first = rows[0]
    edited = text.replace(
        f",{first['name']},{first['version']},", f",{first['name']},9.9-forged,", 1
    ).encode()
    manifest["files"]["patchset.csv"]["sha256"] = hashlib.sha256(edited).hexdigest()
    tampered = tmp_path / "tampered.zip"
    rewrite(bundle.path, tampered, "patchset.csv", edited, manifest)
    result = verify_bundle(tampered)
    assert result.problems == [
        f"patchset.csv row 2 (rollout {first['rollout']}, {first['name']}): version is "
        f"'9.9-forged', the rollout.pinned event says {first['version']!r}"
    ]
