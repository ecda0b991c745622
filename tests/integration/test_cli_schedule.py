"""`patchgate schedule …` and `patchgate plan reload` as real processes on real SQLite.

``run``, ``freeze`` and ``unfreeze`` decide through serve's API (``tests.apikit``) with
the operator's token. The clock (the server's and the CLI's) is the test-only file clock
(PATCHGATE_TEST_CLOCK_FILE), set to a few days before the example weekly plan's year-end
blackout (2030-12-20 → 2031-01-03).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.cli.main import main
from bot.settings import Settings
from tests.apikit import ThreadedApi, issue_token
from workflows.db import create_database, read_only
from workflows.models import DueTime, Event, Freeze, Request

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "U0OPERATOR"
NOW = "2030-12-10T12:00:00+00:00"  # a Tuesday

CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//PatchGate tests//EN
BEGIN:VEVENT
UID:audit-1@example.com
DTSTART:20301215T000000Z
DTEND:20301216T000000Z
SUMMARY:Quarterly audit
END:VEVENT
END:VCALENDAR
"""


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    clock = tmp / "clock"
    if not clock.exists():
        clock.write_text(NOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        {
            "PATCHGATE_DATABASE_URL": f"sqlite:///{tmp / 'pg.db'}",
            "PATCHGATE_PLANS_DIR": str(REPO / "examples/plans"),
            "PATCHGATE_INVENTORY": str(REPO / "examples/inventory"),
            "PATCHGATE_TEST_CLOCK_FILE": str(clock),
            "PATCHGATE_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def cli(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=_env(tmp, **extra),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """The same ``main()`` in this process (a CLI process takes seconds to start on a busy
    CI machine); the subprocess tests above cover the process boundary itself."""

    def go(tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        with monkeypatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("PATCHGATE_")]:
                patch.delenv(key)
            for key, value in _env(tmp, **extra).items():
                if key.startswith("PATCHGATE_"):
                    patch.setenv(key, value)
            patch.chdir(tmp)
            capsys.readouterr()
            try:
                code = main(list(args))
            finally:
                root.handlers[:], root.level = handlers, level
            out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)

    return go


def query(tmp: Path, statement: Any) -> list[Any]:
    async def go() -> list[Any]:
        db = create_database(f"sqlite:///{tmp / 'pg.db'}")
        try:
            async with read_only(db) as session:
                return list(await session.scalars(statement))
        finally:
            await db.dispose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file per module (each CLI process takes seconds to start)."""
    tmp = tmp_path_factory.mktemp("schema")
    result = cli(tmp, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return tmp / "pg.db"


@pytest.fixture
def migrated(tmp_path: Path, schema: Path) -> Path:
    shutil.copyfile(schema, tmp_path / "pg.db")
    return tmp_path


@pytest.fixture
def server(migrated: Path) -> Iterator[ThreadedApi]:
    """serve's API on the test's database, with the test clock; operators from ITS settings."""
    _env(migrated)  # writes the clock file
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{migrated / 'pg.db'}",
        plans_dir=REPO / "examples/plans",
        operators=OPERATOR,
        test_clock_file=migrated / "clock",
    )
    with ThreadedApi(settings) as api:
        yield api


def decider(server: ThreadedApi, user: str) -> dict[str, str]:
    now = dt.datetime.fromisoformat(NOW)  # the server's (test) clock
    token = issue_token(server.settings.database_url, user, now=now)
    return {"PATCHGATE_SERVER_URL": server.url, "PATCHGATE_TOKEN": token}


@pytest.fixture
def operator(server: ThreadedApi) -> dict[str, str]:
    """A CLI environment deciding as the operator."""
    return decider(server, OPERATOR)


NOT_TOKENS = ~Event.kind.like("token.%")


def test_windows_lists_five_windows_in_the_plans_zone_and_utc_marking_blackouts(
    migrated: Path, run_cli: RunCli
) -> None:
    calendar = migrated / "blackouts.ics"
    calendar.write_text(CALENDAR)
    result = cli(
        migrated, "schedule", "windows", "weekly", "--json",
        PATCHGATE_BLACKOUT_CALENDAR=str(calendar),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [weekly] = json.loads(result.stdout)
    assert weekly["schedule"] == {
        "cron": "0 2 * * 0",
        "timezone": "Europe/London",
        "duration": "4h",
    }
    starts = [(w["start"], w["blocked_by"]) for w in weekly["windows"]]
    assert starts == [
        ("2030-12-15T02:00:00+00:00", {"kind": "calendar", "reason": "Quarterly audit"}),
        ("2030-12-22T02:00:00+00:00", {"kind": "blackout", "reason": "Year-end change freeze"}),
        ("2030-12-29T02:00:00+00:00", {"kind": "blackout", "reason": "Year-end change freeze"}),
        ("2031-01-05T02:00:00+00:00", None),
        ("2031-01-12T02:00:00+00:00", None),
    ]

    text = run_cli(migrated, "schedule", "windows", PATCHGATE_BLACKOUT_CALENDAR=str(calendar))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "emergency-security: no schedule (rollouts start only when asked)" in lines
    assert (
        "  Sun 2030-12-15 02:00-06:00 Europe/London (2030-12-15 02:00-06:00 UTC)"
        "  BLACKED OUT (calendar: Quarterly audit)"
    ) in lines
    assert "  Sun 2031-01-05 02:00-06:00 Europe/London (2031-01-05 02:00-06:00 UTC)" in lines


def test_a_missing_blackout_calendar_is_one_settings_line_and_exit_2(
    tmp_path: Path, run_cli: RunCli
) -> None:
    result = run_cli(
        tmp_path, "schedule", "windows", PATCHGATE_BLACKOUT_CALENDAR=str(tmp_path / "no.ics")
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"patchgate: PATCHGATE_BLACKOUT_CALENDAR: {tmp_path / 'no.ics'}: no such file "
        "(an iCalendar .ics file of blackouts)"
    )


def test_a_bad_time_is_one_usage_line_exit_1_and_nothing_is_written(
    migrated: Path, operator: dict[str, str]
) -> None:
    result = cli(migrated, "schedule", "run", "weekly", "--at", "next tuesday-ish", **operator)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("patchgate: bad time 'next tuesday-ish': cannot read it;")
    assert 'expected a time like "2026-12-06 02:00"' in result.stderr
    assert query(migrated, sa.select(DueTime.id)) == []


def test_a_run_is_scheduled_in_the_given_zone_and_audited(
    migrated: Path, operator: dict[str, str]
) -> None:
    at = ("--at", "2030-12-12 03:00 Europe/Berlin")
    result = cli(migrated, "schedule", "run", "weekly", *at, "--json", **operator)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["at"] == "2030-12-12T02:00:00+00:00"
    assert data["window_end"] == "2030-12-12T06:00:00+00:00"  # the plan's 4h duration
    [row] = query(migrated, sa.select(DueTime))
    assert (row.kind, row.plan_name, row.requested_by) == ("run", "weekly", OPERATOR)
    [event] = query(migrated, sa.select(Event).where(Event.kind == "schedule.run_requested"))
    assert event.actor == OPERATOR and json.loads(event.body)["data"]["source"] == "api"


def test_run_and_freeze_without_a_token_or_by_a_non_operator_are_refused(
    migrated: Path, run_cli: RunCli, server: ThreadedApi
) -> None:
    tokenless = run_cli(migrated, "schedule", "freeze", "no", "reason")
    assert tokenless.returncode == 2
    assert tokenless.stderr.count("\n") == 1 and "PATCHGATE_TOKEN" in tokenless.stderr
    stranger = run_cli(
        migrated, "schedule", "run", "weekly", "--at", "in 2h",
        PATCHGATE_OPERATORS="U0SOMEONE", **decider(server, "U0SOMEONE"),
    )  # fmt: skip
    assert stranger.returncode == 1 and "is not an operator" in stranger.stderr
    assert query(migrated, sa.select(DueTime.id)) == []
    assert query(migrated, sa.select(Freeze.id)) == []
    [refusal] = query(migrated, sa.select(Event).where(NOT_TOKENS))
    assert (refusal.kind, json.loads(refusal.body)["data"]["action"]) == ("request.refused", "run")


def test_freeze_marks_windows_frozen_until_unfreeze_lifts_it_both_audited(
    migrated: Path, run_cli: RunCli, operator: dict[str, str]
) -> None:
    result = run_cli(
        migrated, "schedule", "freeze", "--until", "2030-12-16 00:00", "incident", "42", **operator
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("change freeze #1 in force until 2030-12-16 00:00 UTC")
    windows = json.loads(run_cli(migrated, "schedule", "windows", "weekly", "--json").stdout)
    first = windows[0]["windows"][0]
    assert first["start"] == "2030-12-15T02:00:00+00:00"
    assert first["blocked_by"] == {"kind": "freeze", "reason": "incident 42"}

    lifted = run_cli(migrated, "schedule", "unfreeze", "--json", **operator)
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout) == {"lifted": [1]}
    again = run_cli(migrated, "schedule", "unfreeze", **operator)
    assert again.returncode == 1
    assert again.stderr.strip() == "patchgate: there is no active freeze"
    windows = json.loads(run_cli(migrated, "schedule", "windows", "weekly", "--json").stdout)
    assert windows[0]["windows"][0]["blocked_by"] is None
    kinds = query(migrated, sa.select(Event.kind).where(NOT_TOKENS).order_by(Event.id))
    assert kinds == ["freeze.started", "freeze.lifted"]


def test_a_freeze_ending_in_the_past_is_refused_with_one_line(
    migrated: Path, run_cli: RunCli, operator: dict[str, str]
) -> None:
    until = ("--until", "2030-12-01 00:00")
    result = run_cli(migrated, "schedule", "freeze", *until, "late", **operator)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "patchgate: the freeze would end in the past (2030-12-01 00:00 UTC)"
    )
    assert query(migrated, sa.select(Freeze.id)) == []


def test_plan_reload_queues_a_request_for_the_leader(migrated: Path, run_cli: RunCli) -> None:
    result = run_cli(migrated, "plan", "reload", "--json")
    assert result.returncode == 0, result.stderr
    [request] = query(migrated, sa.select(Request))
    assert json.loads(result.stdout) == {"request_id": request.id, "state": "pending"}
    # a maintenance command (database credentials): recorded with the OS user as a label
    admin = f"admin:{getpass.getuser()}"
    assert (request.kind, request.state, request.requested_by) == ("reload", "pending", admin)
