"""Evidence bundles built from a real rollout driven by the engine (recording executor),
on SQLite and PostgreSQL: every file, the figures, determinism and verification."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from tests.enginekit import APPROVER_1, APPROVER_2
from tests.reportkit import FILES, PERIOD, drive_rollout, rewrite
from workflows.db import Database, read_only
from workflows.models import AuditHead
from workflows.reports import ReportRequest, build_bundle, verify_bundle


def read(path: Path) -> bytes:
    return path.read_bytes()


def rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


@pytest.fixture
async def bundle_path(db: Database, tmp_path: Path) -> Path:
    await drive_rollout(db)
    bundle = await build_bundle(db, ReportRequest(PERIOD), tmp_path / "one")
    return bundle.path


async def test_bundle_from_a_real_rollout_holds_every_file_with_correct_figures(
    db: Database, bundle_path: Path
) -> None:
    with zipfile.ZipFile(bundle_path) as archive:
        assert set(archive.namelist()) == FILES
        manifest = json.loads(archive.read("manifest.json"))
        runs = rows(archive, "host_runs.csv")
        rollouts = rows(archive, "rollouts.csv")
        approvals = rows(archive, "approvals.csv")
        coverage = {r["host"]: r for r in rows(archive, "coverage.csv")}
        events = archive.read("events.jsonl").decode().splitlines()
        html = archive.read("summary.html").decode()

    assert len(rollouts) == 1 and rollouts[0]["state"] == "succeeded_with_failures"
    assert (rollouts[0]["hosts"], rollouts[0]["healthy"], rollouts[0]["rolled_back"]) == (
        "10",
        "9",
        "1",
    )
    assert len(runs) == 10
    dev = next(r for r in runs if r["host"] == "dev-01")
    assert dev["ring"] == "dev" and dev["result"] == "healthy" and dev["exit_code"] == "0"
    assert dev["packages"] == "demo-app 1.0 -> 1.1; openssl 3.0.11-1 -> 3.0.13-1"
    assert dev["finished"] == "2026-01-04T02:00:00Z"
    prod6 = next(r for r in runs if r["host"] == "prod-06")
    assert prod6["result"] == "rolled_back" and "health check failed" in prod6["error"]
    # the version it tried is kept beside the one it was put back to
    assert prod6["packages"] == (
        "demo-app 1.0 -> 1.1 (rolled back to 1.0); "
        "openssl 3.0.11-1 -> 3.0.13-1 (rolled back to 3.0.11-1)"
    ), prod6["packages"]
    assert {r["not_fully_patched"] for r in runs} == {""}

    votes = [a for a in approvals if a["decision"] in ("approve", "reject")]
    assert sorted((a["ring"], a["who"]) for a in votes) == [
        ("prod", APPROVER_1),
        ("prod", APPROVER_2),
        ("staging", APPROVER_1),
    ]
    assert all(len(a["patchset_hash"]) == 64 for a in votes)
    assert {a["decision"] for a in approvals} - {"approve"} == {"gate approved"}

    assert coverage["prod-06"]["gaps"] == "1 fix(es) past SLA"
    assert coverage["prod-06"]["fixes_open_at_end"] == "2"
    assert coverage["dev-01"]["last_patched"] == "2026-01-04T02:00:00Z"
    assert coverage["dev-01"]["last_assessed"] == "2026-01-04T02:00:00Z"  # facts, by the rollout
    assert coverage["dev-01"]["gaps"] == "" and coverage["dev-01"]["assessed_in_period"] == "yes"

    ttp = {row["severity"]: row for row in manifest["figures"]["time_to_patch"]}
    critical, medium = ttp["critical"], ttp["medium"]
    # dev + staging patched 6.92 days after publication, prod 7.17 days; prod-06 open
    assert critical["fixes_patched"] == 9
    assert critical["mean_days"] == pytest.approx(63.5 / 9, abs=0.01)
    assert critical["median_days"] == pytest.approx(7.17, abs=0.01)
    assert (critical["within_sla"], critical["sla_population"]) == (4, 10)
    assert critical["sla_share"] == 0.4
    assert (critical["open_at_end"], critical["overdue_open"]) == (1, 1)
    assert critical["exposure_days"] == pytest.approx(43.0, abs=0.01)
    # medium: no publication date, so from the first detection (the assessment)
    assert medium["mean_days"] == pytest.approx(29 / 9, abs=0.01)
    assert medium["median_days"] == pytest.approx(3.33, abs=0.01)
    assert (medium["within_sla"], medium["sla_population"], medium["overdue_open"]) == (9, 9, 0)
    assert ttp["high"]["fixes_patched"] == 0 and ttp["high"]["sla_share"] is None

    figures = manifest["figures"]
    assert figures["coverage"]["hosts_known"] == 10
    assert figures["coverage"]["hosts_assessed"] == 10
    assert figures["coverage"]["hosts_patched"] == 9
    assert figures["coverage"]["hosts_with_gaps"] == 1
    assert figures["rollback"]["host_runs_changed"] == 10
    assert figures["rollback"]["host_rollback_rate"] == 0.1
    assert figures["rollback"]["rollout_rollback_rate"] == 0.0
    assert figures["approvals"]["votes"] == 3
    assert figures["approvals"]["median_hours_to_decision"] == 3.0  # 0 h and 6 h

    async with read_only(db) as session:
        head = await session.get(AuditHead, 1)
    assert head is not None
    anchor = json.loads(events[0])["anchor"]
    assert anchor == {"prev_hash": "0" * 64, "seq": 0}
    assert len(events) - 1 == head.count == manifest["audit"]["slice"]["count"]
    assert manifest["audit"]["head"]["last_hash"] == head.last_hash
    assert manifest["audit"]["slice"]["last_hash"] == head.last_hash
    assert manifest["audit"]["pruned"] is None
    assert set(manifest["framework_mapping"]["frameworks"]) == {"soc2", "pci", "hipaa", "iso27001"}
    for name, meta in manifest["files"].items():
        assert len(meta["sha256"]) == 64, name

    assert "data:image/png;base64,iVBORw0KGgo" in html
    assert "Requirement 6.3.3" in html and "A.8.8" in html and "CC8.1" in html
    assert "45 CFR §164.308(a)(5)(ii)(B)" in html and "judgement" in html
    assert 'src="http' not in html and "<script" not in html  # self-contained

    result = verify_bundle(bundle_path)
    assert result.ok, result.problems
    assert result.events == head.count and result.files == 8  # patchset.csv too


async def test_two_builds_over_the_same_data_are_byte_identical(
    db: Database, bundle_path: Path, tmp_path: Path
) -> None:
    again = await build_bundle(db, ReportRequest(PERIOD), tmp_path / "two")
    assert again.path.name == bundle_path.name
    assert read(again.path) == read(bundle_path)


async def test_one_framework_keeps_only_its_controls(
    db: Database, bundle_path: Path, tmp_path: Path
) -> None:
    pci = await build_bundle(db, ReportRequest(PERIOD, framework="pci"), tmp_path / "pci")
    assert pci.path.name.endswith("-pci.zip")
    assert set(pci.manifest["framework_mapping"]["frameworks"]) == {"pci"}
    with zipfile.ZipFile(pci.path) as archive:
        html = archive.read("summary.html").decode()
    assert "Requirement 6.3.3" in html and "CC8.1" not in html


async def test_editing_one_csv_byte_fails_verification_naming_the_file(
    bundle_path: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(bundle_path) as archive:
        data = bytearray(archive.read("host_runs.csv"))
    index = data.index(b"healthy")
    data[index] = ord("H")
    tampered = tmp_path / "tampered.zip"
    rewrite(bundle_path, tampered, "host_runs.csv", bytes(data))
    result = verify_bundle(tampered)
    assert not result.ok
    assert len(result.problems) == 2
    assert result.problems[0].startswith("host_runs.csv: SHA-256 mismatch")
    # and the row recomputed from the bundle's events is named
    assert result.problems[1].startswith("host_runs.csv row 2 (rollout ")
    assert re.search(
        r"result is 'Healthy', its last host\.state event \(seq \d+\) says 'healthy'$",
        result.problems[1],
    ), result.problems[1]


async def test_editing_one_event_breaks_the_chain_even_with_a_rewritten_manifest(
    bundle_path: Path, tmp_path: Path
) -> None:
    import hashlib

    with zipfile.ZipFile(bundle_path) as archive:
        lines = archive.read("events.jsonl").decode().splitlines()
        manifest = json.loads(archive.read("manifest.json"))
    record = json.loads(lines[3])
    record["body"] = record["body"].replace('"actor":"patchgate"', '"actor":"someone"', 1)
    if record["body"] == json.loads(lines[3])["body"]:
        record["body"] = record["body"].replace('"seq":', '"seq": ', 1)
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    data = ("\n".join(lines) + "\n").encode()
    # a forger who also fixes the manifest's SHA-256 is still caught by the chain
    manifest["files"]["events.jsonl"]["sha256"] = hashlib.sha256(data).hexdigest()
    tampered = tmp_path / "event.zip"
    rewrite(bundle_path, tampered, "events.jsonl", data, manifest)
    result = verify_bundle(tampered)
    assert not result.ok
    assert len(result.problems) == 1
    assert result.problems[0].startswith(f"events.jsonl line 4 (event {record['id']}, seq 3)")
    assert result.problems[0].endswith("hash does not match its contents (event changed)")


async def test_removing_an_event_is_a_chain_break(bundle_path: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle_path) as archive:
        lines = archive.read("events.jsonl").decode().splitlines()
    del lines[2]
    tampered = tmp_path / "gap.zip"
    rewrite(bundle_path, tampered, "events.jsonl", ("\n".join(lines) + "\n").encode())
    problems = verify_bundle(tampered).problems
    assert problems[0].startswith("events.jsonl: SHA-256 mismatch")
    assert "previous hash does not match" in problems[1] and "chain break" in problems[1]
