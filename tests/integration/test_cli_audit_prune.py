"""`patchgate audit prune` and `audit verify` after it, as real processes on a SQLite file."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.test_cli_outbox_helpers import REPO, execute, make_database
from workflows import audit
from workflows.db import Database, unit_of_work

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = "2026-11-28T12:00:00+00:00"
KEY = "0123456789abcdef0123456789abcdef"


async def ten_days(db: Database) -> None:
    for i in range(10):
        async with unit_of_work(db) as session:
            session.info["audit_keys"] = audit.AuditKeys(key=KEY.encode())
            await audit.append(
                session, kind="rollout.transition", data={"i": i}, at=T0 + dt.timedelta(days=i)
            )


def run(url: str, tmp: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clock = tmp / "clock"
    clock.write_text(NOW)
    full = {
        **os.environ,
        "PATCHGATE_DATABASE_URL": url,
        "PATCHGATE_LOG_LEVEL": "WARNING",
        "PATCHGATE_TEST_CLOCK_FILE": str(clock),
        "PATCHGATE_AUDIT_KEY": KEY,
        "PATCHGATE_AUDIT_ARCHIVE_DIR": str(tmp / "archive"),
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


def count_events(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return make_database(tmp_path / "pg.db", ten_days)


def test_prune_then_verify_and_verify_the_archive(url: str, tmp_path: Path) -> None:
    done = run(url, tmp_path, "audit", "prune", "--before", "2026-01-06")
    assert done.returncode == 0, done.stderr
    archive = tmp_path / "archive" / "audit-0000000001-0000000005.jsonl.gz"
    assert done.stdout.startswith("pruned 5 events (seq 1-5, 2026-01-01T00:00:00.000000Z to ")
    assert str(archive) in done.stdout and "signed checkpoint at seq 5" in done.stdout
    assert count_events(url) == 6  # five left and the audit.pruned event

    verified = run(url, tmp_path, "audit", "verify", "--archive", str(archive))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines() == [
        "audit chain OK: 6 events verified from the signed checkpoint at seq 5 (events before "
        "2026-01-06T00:00:00.000000Z pruned; archive audit-0000000001-0000000005.jsonl.gz)",
        "archive OK: audit-0000000001-0000000005.jsonl.gz: 5 events (seq 1-5), as its "
        "checkpoint recorded",
    ]
    as_json = json.loads(run(url, tmp_path, "audit", "verify", "--json").stdout)
    assert as_json["ok"] is True and as_json["checkpoint"]["seq"] == 5

    again = run(url, tmp_path, "audit", "prune", "--before", "2026-01-06")
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "nothing to prune: no events before 2026-01-06T00:00:00.000000Z are left",
    )


def test_verify_after_the_checkpoint_is_edited_exits_1(url: str, tmp_path: Path) -> None:
    assert run(url, tmp_path, "audit", "prune", "--before", "2026-01-06").returncode == 0
    execute(url, "UPDATE audit_checkpoints SET count = 4, seq = 4")
    done = run(url, tmp_path, "audit", "verify")
    assert done.returncode == 1
    assert done.stdout.strip() == (
        "audit chain BROKEN: checkpoint seq 4: signature does not verify (tampered)"
    )


def test_verify_of_a_pruned_log_without_its_key_exits_1_naming_the_key_id(
    url: str, tmp_path: Path
) -> None:
    assert run(url, tmp_path, "audit", "prune", "--before", "2026-01-06").returncode == 0
    # no PATCHGATE_AUDIT_KEY: SQLite's default key file (none yet) knows no key
    done = run(url, tmp_path, "audit", "verify", PATCHGATE_AUDIT_KEY="")
    assert done.returncode == 1
    kid = audit.key_id(KEY.encode())
    assert done.stdout.strip() == (
        f"audit chain BROKEN: checkpoint seq 5 was signed with another key (key id {kid}; "
        "known: none: PATCHGATE_AUDIT_KEY, PATCHGATE_AUDIT_OLD_KEYS)"
    )


def test_a_dry_run_shows_what_would_go_and_changes_nothing(url: str, tmp_path: Path) -> None:
    done = run(url, tmp_path, "audit", "prune", "--before", "2026-01-04", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("would prune 3 events (seq 1-3, ")
    assert done.stdout.strip().endswith("nothing changed (dry run)")
    assert count_events(url) == 10 and not (tmp_path / "archive").exists()


@pytest.mark.parametrize(
    ("before", "message"),
    [
        ("yesterday-ish", "--before: bad time 'yesterday-ish'"),
        ("2026-02-30", "is not a date"),
        ("2026-11-01", "is too recent: the last 90 days of events are kept"),
        ("in 2h", "is too recent"),
    ],
)
def test_bad_or_too_recent_dates_exit_2_and_change_nothing(
    url: str, tmp_path: Path, before: str, message: str
) -> None:
    done = run(url, tmp_path, "audit", "prune", "--before", before)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert count_events(url) == 10 and not (tmp_path / "archive").exists()


def test_prune_with_a_key_file_that_cannot_be_made_is_refused(url: str, tmp_path: Path) -> None:
    done = run(
        url,
        tmp_path,
        "audit",
        "prune",
        "--before",
        "2026-01-06",
        PATCHGATE_AUDIT_KEY="",
        PATCHGATE_AUDIT_KEY_FILE=str(tmp_path / "no-such-dir" / "key"),
    )
    assert done.returncode == 2
    assert "PATCHGATE_AUDIT_KEY_FILE: cannot create" in done.stderr
    assert count_events(url) == 10


def test_a_short_key_is_a_settings_error(url: str, tmp_path: Path) -> None:
    done = run(url, tmp_path, "audit", "verify", PATCHGATE_AUDIT_KEY="short")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "patchgate: PATCHGATE_AUDIT_KEY: must be at least 32 characters (e.g. `openssl rand "
        "-hex 32`)"
    )


def test_prune_is_a_maintenance_command_recorded_with_the_os_user_as_a_label(
    url: str, tmp_path: Path
) -> None:
    """Whoever holds the database credentials (and the audit key) is an administrator: the
    environment's OS user is recorded as a label (``admin:``), not checked against a list."""
    done = run(url, tmp_path, "audit", "prune", "--before", "2026-01-06", LOGNAME="bob")
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            actor = conn.execute(
                sa.text("SELECT actor FROM events WHERE kind = 'audit.pruned'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert actor == "admin:bob"


def test_prune_also_removes_ansible_job_directories_past_their_retention(
    url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "ansible-artifacts"
    old, recent, foreign = (
        artifacts / "pg-1-r0-b0-ansible-apply",
        artifacts / "pg-2-r0-b0-ansible-apply",
        artifacts / "notes",
    )
    for folder in (old, recent, foreign):
        folder.mkdir(parents=True)
    for folder in (old, recent):
        (folder / "patchgate.json").write_text("{}")  # a job directory of the backend's
        (folder / "artifacts").mkdir()
        (folder / "artifacts" / "status").write_text("successful")
    (foreign / "readme.txt").write_text("not a job directory")
    ancient = dt.datetime(2020, 1, 1).timestamp()
    for path in [old, *old.rglob("*"), foreign, *foreign.rglob("*")]:
        os.utime(path, (ancient, ancient))

    env = {
        "PATCHGATE_ANSIBLE_ARTIFACTS_DIR": str(artifacts),
        "PATCHGATE_ANSIBLE_ARTIFACTS_RETENTION_DAYS": "30",
    }
    dry = run(url, tmp_path, "audit", "prune", "--before", "2026-01-06", "--dry-run", **env)
    assert dry.returncode == 0, dry.stderr
    assert old.exists() and "Ansible" not in dry.stdout  # a dry run removes nothing

    done = run(url, tmp_path, "audit", "prune", "--before", "2026-01-06", "--json", **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ansible_runs_removed"] == [old.name]
    assert not old.exists() and recent.exists() and foreign.exists()
