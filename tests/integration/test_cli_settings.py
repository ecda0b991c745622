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


def test_a_missing_plans_directory_names_the_setting_and_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, "plan", "list", PATCHGATE_PLANS_DIR=str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"patchgate: PATCHGATE_PLANS_DIR: {tmp_path / 'nowhere'} is not a directory"
    )


def test_a_read_command_on_a_missing_sqlite_file_leaves_no_database_behind(
    tmp_path: Path,
) -> None:
    for argv in (("rollout", "list"), ("audit", "verify"), ("outbox", "list")):
        result = run(tmp_path, *argv, PATCHGATE_DATABASE_URL="sqlite:///missing.db")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip() == (
            "patchgate: the database missing.db does not exist (PATCHGATE_DATABASE_URL); "
            "run `patchgate db upgrade` first"
        )
        assert not list(tmp_path.iterdir()), argv


def test_the_platforms_port_is_named_as_the_platform_spells_it(tmp_path: Path) -> None:
    result = run(tmp_path, "plan", "list", PORT="eighty")
    assert result.returncode == 2
    assert result.stderr.startswith("patchgate: PORT: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_patchgate_settings_win_over_the_platforms(tmp_path: Path) -> None:
    from bot.settings import Settings

    env = {"PORT": "5000", "DATABASE_URL": "postgres://u@db/app", "PATCHGATE_PORT": "7000"}
    saved = {k: os.environ.get(k) for k in (*env, "PATCHGATE_DATABASE_URL")}
    try:
        os.environ.pop("PATCHGATE_DATABASE_URL", None)
        os.environ.update(env)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.port == 7000
        assert settings.database.async_url == "postgresql+psycopg://u@db/app"
        os.environ["PATCHGATE_DATABASE_URL"] = "sqlite:///x.db"
        assert Settings(_env_file=None).database.dialect == "sqlite"  # type: ignore[call-arg]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    clean["PATCHGATE_PLANS_DIR"] = str(REPO / "examples/plans")
    reader, writer = os.pipe()
    os.close(reader)  # `patchgate plan list | head -0`: nobody reads
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot.cli.main", "plan", "list"],
            env=clean,
            cwd=tmp_path,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert result.returncode in (0, 141), result.stderr
    assert result.stderr == ""


def test_a_missing_inventory_names_the_setting_and_exits_2(tmp_path: Path) -> None:
    result = run(tmp_path, "inventory", "show", PATCHGATE_INVENTORY=str(tmp_path / "none.yml"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"patchgate: PATCHGATE_INVENTORY: {tmp_path / 'none.yml'}: no such file or directory"
    )
