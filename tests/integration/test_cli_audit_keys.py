"""The audit keys and signatures as real processes on a SQLite file: the default key file,
`audit keygen`, `audit rotate-key`, `audit verify --witness`, and `report build|verify`
with an Ed25519 key."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from bot.scheduler import build_scheduler
from bot.settings import load_settings
from bot.witness import WITNESS_JOB, register_witness, witness_deps, witness_once
from tests.integration.test_cli_outbox_helpers import REPO, execute, make_database
from workflows import audit
from workflows.clock import ManualClock
from workflows.db import Database, create_database, unit_of_work
from workflows.models import Base

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY_A = "a" * 32
KEY_B = "b" * 32


def run(url: str, tmp: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PATCHGATE_DATABASE_URL": url,
        "PATCHGATE_LOG_LEVEL": "WARNING",
        "PATCHGATE_ADMINS": "U0ADMIN1",
        "PATCHGATE_CLI_IDENTITIES": "alice=U0ADMIN1",
        "USER": "alice",
        "LOGNAME": "alice",
        "PYTHONPATH": str(REPO),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *argv],
        capture_output=True,
        text=True,
        env=full,
        cwd=tmp,
        timeout=60,
        check=False,
    )


async def amake(path: Path, fill=None) -> str:  # type: ignore[no-untyped-def]
    """make_database inside a running event loop."""
    url = f"sqlite:///{path}"
    db = create_database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        if fill is not None:
            await fill(db)
    finally:
        await db.dispose()
    return url


def keyed_fill(key: str, n: int = 3):  # type: ignore[no-untyped-def]
    async def fill(db: Database) -> None:
        for i in range(n):
            async with unit_of_work(db) as session:
                session.info["audit_keys"] = audit.AuditKeys(key=key.encode())
                await audit.append(session, kind="rollout.transition", data={"i": i}, at=T0)

    return fill


async def test_on_sqlite_the_first_append_generates_a_private_key_file_beside_the_database(
    tmp_path: Path,
) -> None:
    url = await amake(tmp_path / "pg.db")
    settings = load_settings(database_url=url, _env_file=None)
    key_file = tmp_path / "pg.db.audit-key"
    db = create_database(settings.database)
    try:
        assert not key_file.exists()
        await audit.verify_database(db)  # verifying never creates it
        assert not key_file.exists()
        async with unit_of_work(db) as session:
            event = await audit.append(session, kind="x", data={}, at=T0)
    finally:
        await db.dispose()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert event.key_id == audit.key_id(key_file.read_text().strip().encode())


def test_rotate_key_marks_the_new_key_and_the_old_one_still_verifies_what_it_macd(
    tmp_path: Path,
) -> None:
    url = make_database(tmp_path / "pg.db", keyed_fill(KEY_A))
    rotated = {"PATCHGATE_AUDIT_KEY": KEY_B, "PATCHGATE_AUDIT_OLD_KEYS": KEY_A}
    done = run(url, tmp_path, "audit", "rotate-key", "--json", **rotated)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    id_a, id_b = audit.key_id(KEY_A.encode()), audit.key_id(KEY_B.encode())
    assert report == {"key_id": id_b, "previous_key_id": id_a, "seq": 4}

    ok = run(url, tmp_path, "audit", "verify", "--json", **rotated)
    assert ok.returncode == 0, ok.stdout
    assert json.loads(ok.stdout)["key_ids"] == sorted([id_a, id_b])

    forgot = run(url, tmp_path, "audit", "verify", PATCHGATE_AUDIT_KEY=KEY_B)
    assert forgot.returncode == 1
    assert f"MAC'd with audit key id {id_a}, which is neither the current key" in forgot.stdout


def test_keygen_writes_a_pair_once_and_never_replaces_a_key(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db")
    argv = ("audit", "keygen", "--private", "k.pem", "--public", "k.pub")
    done = run(url, tmp_path, *argv)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert audit.load_public_key(tmp_path / "k.pub").key_id in done.stdout
    again = run(url, tmp_path, *argv)
    assert again.returncode == 2 and "exists; keygen never replaces a key" in again.stderr


async def test_verify_with_the_witness_names_a_wipe_that_verify_alone_calls_ok(
    tmp_path: Path,
) -> None:
    url = await amake(tmp_path / "pg.db", keyed_fill(KEY_A, 5))
    audit.generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    witness = tmp_path / "witness.jsonl"
    settings = load_settings(
        database_url=url,
        audit_key=KEY_A,
        signing_key=tmp_path / "k.pem",
        audit_witness_file=witness,
        _env_file=None,
    )
    db = create_database(settings.database)
    try:
        deps = witness_deps(settings, db, ManualClock(T0))
        assert deps is not None
        await witness_once(deps)  # the leader's job
    finally:
        await db.dispose()
    assert json.loads(witness.read_text())["seq"] == 5

    execute(url, "DELETE FROM events")
    execute(url, "DELETE FROM audit_head")
    alone = run(url, tmp_path, "audit", "verify", PATCHGATE_AUDIT_KEY=KEY_A)
    assert (alone.returncode, alone.stdout.strip()) == (0, "audit chain OK: 0 events verified")
    witnessed = run(
        url,
        tmp_path,
        "audit",
        "verify",
        "--witness",
        str(witness),
        "--public-key",
        "k.pub",
        PATCHGATE_AUDIT_KEY=KEY_A,
    )
    assert witnessed.returncode == 1
    assert witnessed.stdout.startswith("audit chain BROKEN: witness line 1 (seq 5, hash ")
    assert witnessed.stdout.strip().endswith(
        "is beyond the database's head (seq 0): every event was wiped"
    )


def test_report_build_signs_and_verify_needs_only_the_public_key(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db", keyed_fill(KEY_A))
    audit.generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    audit.generate_keypair(tmp_path / "other.pem", tmp_path / "other.pub")
    built = run(
        url,
        tmp_path,
        "report",
        "build",
        "--since",
        "2025-12-01",
        "--until",
        "2026-01-31",
        "--out",
        "out",
        "--json",
        PATCHGATE_AUDIT_KEY=KEY_A,
        PATCHGATE_SIGNING_KEY=str(tmp_path / "k.pem"),
    )
    assert built.returncode == 0, built.stderr
    path = json.loads(built.stdout)["path"]
    # the auditor: no database, no secret
    auditor = {"PATCHGATE_DATABASE_URL": "sqlite:///nowhere.db"}
    good = run(url, tmp_path, "report", "verify", path, "--public-key", "k.pub", **auditor)
    assert good.returncode == 0, good.stdout
    kid = audit.load_public_key(tmp_path / "k.pub").key_id
    assert f"signature OK: manifest.json signed by key {kid}" in good.stdout
    wrong = run(url, tmp_path, "report", "verify", path, "--public-key", "other.pub", **auditor)
    assert wrong.returncode == 1
    assert f"manifest.sig: signed by key id {kid}, not by the public key given" in wrong.stdout


def test_serve_refuses_a_witness_file_without_a_signing_key(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db")
    done = run(url, tmp_path, "serve", PATCHGATE_AUDIT_WITNESS_FILE=str(tmp_path / "witness.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "patchgate: PATCHGATE_SIGNING_KEY: required with PATCHGATE_AUDIT_WITNESS_FILE "
        "(witnessed heads are signed; `patchgate audit keygen` makes a key)"
    )


async def test_the_leader_registers_the_witness_job_only_when_configured(tmp_path: Path) -> None:
    url = await amake(tmp_path / "pg.db")
    audit.generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    plain = load_settings(database_url=url, _env_file=None)
    witnessing = load_settings(
        database_url=url,
        signing_key=tmp_path / "k.pem",
        audit_witness_file=tmp_path / "witness.jsonl",
        audit_witness_interval=30,
        _env_file=None,
    )
    db = create_database(witnessing.database)
    try:
        scheduler = build_scheduler()
        register_witness(scheduler, witness_deps(plain, db, ManualClock(T0)))
        assert scheduler.get_job(WITNESS_JOB) is None
        register_witness(scheduler, witness_deps(witnessing, db, ManualClock(T0)))
        job = scheduler.get_job(WITNESS_JOB)
        assert job is not None and job.trigger.interval == dt.timedelta(seconds=30)
    finally:
        await db.dispose()
