"""Invalid settings stop the program with one line per problem, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=clean,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_settings_give_one_line_each_naming_the_variable_and_exit_2(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "plan",
        "list",
        PATCHGATE_DATABASE_URL="mysql://nope/db",
        PATCHGATE_TIMEZONE="Mars/Olympus",
        PATCHGATE_PORT="eighty",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert any(
        line.startswith("patchgate: PATCHGATE_DATABASE_URL: not a valid database URL")
        for line in lines
    )
    assert any("PATCHGATE_TIMEZONE: unknown time zone 'Mars/Olympus'" in line for line in lines)
    assert any("PATCHGATE_PORT:" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_plan_validate_needs_no_slack_or_database_settings(tmp_path: Path) -> None:
    result = run(tmp_path, "plan", "validate", str(REPO / "examples/plans/weekly.yml"))
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.iterdir())  # no database file was created


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PATCHGATE_OPERATORS=not-an-id\n")
    result = run(tmp_path, "plan", "list")
    assert result.returncode == 2
    assert "PATCHGATE_OPERATORS: 'not-an-id' is not a Slack user or group ID" in result.stderr
