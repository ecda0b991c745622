"""`patchgate outbox list|retry` as a real process against a SQLite file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

from tests.integration.test_cli_outbox_helpers import execute, make_database, patchgate
from workflows import outbox
from workflows.db import Database, unit_of_work

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


async def three_rows(db: Database) -> None:
    async with unit_of_work(db) as session:
        for key, topic in (
            ("r1:started", "slack.post"),
            ("r1:ticket", "jira.create"),
            ("r1:done", "slack.post"),
        ):
            await outbox.enqueue(
                session, key=key, topic=topic, payload={"text": key}, at=T0, rollout_id=1
            )


def setup(tmp_path: Path) -> str:
    url = make_database(tmp_path / "pg.db", three_rows)
    execute(
        url,
        "UPDATE outbox SET state = 'dead', attempts = 1, last_error = 'HTTP 400: project XYZ "
        "does not exist' WHERE key = 'r1:ticket'",
    )
    execute(url, "UPDATE outbox SET state = 'delivered' WHERE key = 'r1:started'")
    return url


def row(url: str, key: str) -> dict[str, object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT * FROM outbox WHERE key = :k"), {"k": key})
            return dict(found.mappings().one())
    finally:
        engine.dispose()


def test_outbox_list_shows_every_row_with_its_state_and_error(tmp_path: Path) -> None:
    url = setup(tmp_path)
    done = patchgate(url, "outbox", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split()[3] for line in lines[1:4]] == ["r1:done", "r1:ticket", "r1:started"]
    assert "dead" in lines[2] and "HTTP 400: project XYZ does not exist" in lines[2]
    assert lines[-1] == "(1 pending, 1 delivered, 1 dead)"


def test_outbox_list_filters_by_state_as_json(tmp_path: Path) -> None:
    url = setup(tmp_path)
    done = patchgate(url, "outbox", "list", "--state", "dead", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["key"], r["state"], r["topic"]) for r in rows] == [
        ("r1:ticket", "dead", "jira.create")
    ]


def test_outbox_list_refuses_an_unknown_state(tmp_path: Path) -> None:
    url = setup(tmp_path)
    done = patchgate(url, "outbox", "list", "--state", "lost", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'lost'" in done.stderr


def test_outbox_retry_makes_a_dead_row_pending_again(tmp_path: Path) -> None:
    url = setup(tmp_path)
    dead_id = row(url, "r1:ticket")["id"]
    done = patchgate(url, "outbox", "retry", str(dead_id), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"outbox row {dead_id} (jira.create r1:ticket) is pending again")
    after = row(url, "r1:ticket")
    assert after["state"] == "pending" and after["attempts"] == 0
    verify = patchgate(url, "audit", "verify", cwd=tmp_path)
    assert verify.stdout.strip() == "audit chain OK: 1 events verified"  # the retry is audited


def test_outbox_retry_of_an_unknown_id_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = setup(tmp_path)
    done = patchgate(url, "outbox", "retry", "4242", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "patchgate: outbox row 4242 does not exist"
    assert done.stdout == ""


def test_outbox_retry_of_a_row_that_is_not_dead_changes_nothing(tmp_path: Path) -> None:
    url = setup(tmp_path)
    pending = row(url, "r1:done")
    done = patchgate(url, "outbox", "retry", str(pending["id"]), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"patchgate: outbox row {pending['id']} is pending; only dead rows can be retried"
    )
    assert row(url, "r1:done") == pending


def test_outbox_list_on_a_database_without_the_schema_says_to_migrate(tmp_path: Path) -> None:
    done = patchgate(f"sqlite:///{tmp_path / 'empty.db'}", "outbox", "list", cwd=tmp_path)
    assert done.returncode == 1
    assert "run `patchgate db upgrade` first" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def a_dead_thread(db: Database) -> None:
    async with unit_of_work(db) as session:
        for key, parent in (("r2:parent", None), ("r2:note", "r2:parent"), ("r2:reply", "r2:note")):
            await outbox.enqueue(
                session,
                key=key,
                topic="notify",
                payload={"text": key},
                at=T0,
                rollout_id=2,
                parent_key=parent,
            )


def test_outbox_retry_of_a_dead_parent_resumes_it_and_the_rows_that_died_with_it(
    tmp_path: Path,
) -> None:
    url = make_database(tmp_path / "pg.db", a_dead_thread)
    execute(url, "UPDATE outbox SET state = 'dead', last_error = 'not_in_channel'")
    parent, note, reply = (row(url, k)["id"] for k in ("r2:parent", "r2:note", "r2:reply"))
    refused = patchgate(url, "outbox", "retry", str(note), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"patchgate: outbox row {note} waits on its parent 'r2:parent' (id {parent}), "
        f"which is dead: retry {parent} (its children follow it)"
    )
    done = patchgate(url, "outbox", "retry", str(parent), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        f"outbox row {parent} (notify r2:parent) is pending again, and 2 row(s) waiting on it "
        f"after it ({note}, {reply})"
    )
    assert {row(url, k)["state"] for k in ("r2:parent", "r2:note", "r2:reply")} == {"pending"}
