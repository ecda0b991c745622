"""`patchgate exception …` as real processes against a real SQLite database (``add`` and
``revoke`` through serve's API with the operator's token, ``tests.apikit``); the ticket is
filed through the outbox with the real jira client against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.settings import Settings
from integrations.jira import JiraConfig, JiraTicketer
from tests.apikit import ThreadedApi, issue_token
from tests.fakes.jira_api import JiraEmulator
from workflows import tickets
from workflows.db import create_database, unit_of_work
from workflows.models import Base
from workflows.outbox import OutboxWorker

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "U0OPERATOR"
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def cli(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        {
            "PATCHGATE_DATABASE_URL": f"sqlite:///{tmp / 'pg.db'}",
            "PATCHGATE_PLANS_DIR": str(REPO / "examples/plans"),
            "PATCHGATE_TEST_CLOCK_FILE": str(tmp / "clock"),
        }
    )
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    (tmp_path / "clock").write_text(NOW.isoformat())
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'pg.db'}")
    Base.metadata.create_all(engine)  # the schema (migrations are tested elsewhere)
    engine.dispose()
    return tmp_path


@pytest.fixture
def server(migrated: Path) -> Iterator[ThreadedApi]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{migrated / 'pg.db'}",
        plans_dir=REPO / "examples/plans",
        operators=OPERATOR,
        test_clock_file=migrated / "clock",
    )
    with ThreadedApi(settings) as api:
        yield api


def as_user(server: ThreadedApi, user: str) -> dict[str, str]:
    token = issue_token(server.settings.database_url, user, now=NOW)
    return {"PATCHGATE_SERVER_URL": server.url, "PATCHGATE_TOKEN": token}


@pytest.fixture
def operator(server: ThreadedApi) -> dict[str, str]:
    return as_user(server, OPERATOR)


ADD = ("exception", "add", "web-03", "--owner", "U0OWNER1", "--reason", "vendor freeze")


async def test_list_shows_owner_reason_expiry_and_the_ticket_key_once_filed(
    migrated: Path, operator: dict[str, str]
) -> None:
    added = cli(
        migrated, *ADD, "--package", "openssl", "--expires", "2026-03-20", "--json", **operator
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["package"] == "openssl"
    pending = cli(migrated, "exception", "list")
    assert "web-03 [openssl]" in pending.stdout and "ticket (pending)" in pending.stdout

    jira = JiraEmulator()
    await jira.start()
    db = create_database(f"sqlite:///{migrated / 'pg.db'}")
    try:
        ticketer = JiraTicketer(JiraConfig(url=jira.url, token=jira.token, project="OPS"))
        worker = OutboxWorker(db, {"ticket": ticketer}, clock=lambda: NOW, owner="t")
        assert await worker.run_once() == 1
        async with unit_of_work(db) as session:
            assert await tickets.sync(session, now=NOW)
    finally:
        await db.dispose()
        await jira.stop()

    listed = cli(migrated, "exception", "list")
    line = listed.stdout.strip()
    assert "owner U0OWNER1" in line and "vendor freeze" in line
    assert "until 2026-03-20 23:59Z" in line and "ticket OPS-1" in line
    assert "vendor freeze" in jira.issues["OPS-1"].fields["description"]


def test_an_exception_without_a_channel_says_its_lapse_will_not_reach_slack(
    migrated: Path, operator: dict[str, str]
) -> None:
    quiet = cli(migrated, *ADD, "--expires", "2026-03-10", **operator)
    assert quiet.returncode == 0 and "its lapse will be on its ticket only" in quiet.stderr
    bash = ("--package", "bash", "--expires", "2026-03-10", "--channel", "C0X")
    told = cli(migrated, *ADD, *bash, **operator)
    assert told.returncode == 0 and told.stderr == ""


def test_revoke_ends_the_exception_and_list_no_longer_shows_it(
    migrated: Path, operator: dict[str, str]
) -> None:
    assert cli(migrated, *ADD, "--expires", "2026-03-10", **operator).returncode == 0
    revoked = cli(migrated, "exception", "revoke", "1", "--reason", "fixed upstream", **operator)
    assert revoked.returncode == 0, revoked.stderr
    assert cli(migrated, "exception", "list").stdout.strip() == "no active exceptions"


def test_bad_requests_are_refused_with_one_clear_line_and_write_nothing(
    migrated: Path, server: ThreadedApi, operator: dict[str, str]
) -> None:
    too_far = cli(migrated, *ADD, "--expires", "2026-06-01", **operator)
    assert too_far.returncode == 1
    assert too_far.stderr.strip().startswith("patchgate: the expiry may be at most 30 days")
    stranger = as_user(server, "U0SOMEONE")  # the CLI's PATCHGATE_OPERATORS counts for nothing
    not_operator = cli(
        migrated, *ADD, "--expires", "2026-03-10", PATCHGATE_OPERATORS="U0SOMEONE", **stranger
    )
    assert not_operator.returncode == 1
    assert "is not an operator" in not_operator.stderr
    missing = cli(migrated, "exception", "add", "web-03", "--expires", "2026-03-10")
    assert missing.returncode == 2
    assert "--owner" in missing.stderr and "--reason" in missing.stderr
    assert cli(migrated, "exception", "list").stdout.strip() == "no active exceptions"


def test_expires_takes_relative_times_like_every_time_option(
    migrated: Path, operator: dict[str, str]
) -> None:
    cases = (("openssl", "in 3 days", "2026-03-05T09:00"), ("bash", "36h", "2026-03-03T21:00"))
    for package, text, expected in cases:
        added = cli(migrated, *ADD, "--package", package, "--expires", text, "--json", **operator)
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["expires_at"].startswith(expected), added.stdout
