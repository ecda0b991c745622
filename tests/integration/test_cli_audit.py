"""`patchgate audit verify` as a real process against a SQLite file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.integration.test_cli_outbox_helpers import execute, make_database, patchgate
from workflows import audit
from workflows.db import Database, unit_of_work

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


async def five_events(db: Database) -> None:
    for i in range(5):
        async with unit_of_work(db) as session:
            await audit.append(
                session, kind="rollout.started", data={"i": i}, at=T0, actor="U1", rollout_id=1
            )


def test_audit_verify_on_a_good_log_exits_0_and_prints_the_count(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db", five_events)
    done = patchgate(url, "audit", "verify", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "audit chain OK: 5 events verified",
        "UNKEYED: 5 event(s) carry no MAC (written without an audit key): a database writer "
        "could rewrite them unseen; see docs/reliability.md",
    ]


def test_audit_verify_json_reports_the_count_and_last_hash(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db", five_events)
    done = patchgate(url, "audit", "verify", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["events"] == 5 and len(report["last_hash"]) == 64


def test_audit_verify_on_an_empty_database_verifies_zero_events(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db")
    done = patchgate(url, "audit", "verify", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "audit chain OK: 0 events verified")


def test_audit_verify_after_a_row_is_edited_exits_1_naming_the_row(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db", five_events)
    execute(
        url,
        "UPDATE events SET body = replace(body, :old, :new) WHERE id = 3",
        old='"i":2',
        new='"i":9',
    )
    done = patchgate(url, "audit", "verify", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.strip() == "audit chain BROKEN at event 3: hash does not match its contents"

    as_json = json.loads(patchgate(url, "audit", "verify", "--json", cwd=tmp_path).stdout)
    assert as_json["ok"] is False and as_json["event_id"] == 3


def test_audit_verify_after_the_last_row_is_deleted_exits_1_citing_the_head(tmp_path: Path) -> None:
    url = make_database(tmp_path / "pg.db", five_events)
    execute(url, "DELETE FROM events WHERE id = 5")
    done = patchgate(url, "audit", "verify", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.strip() == (
        "audit chain BROKEN: head says 5 events, chain has 4: the events after seq 4 were "
        "deleted (tail truncated)"
    )
