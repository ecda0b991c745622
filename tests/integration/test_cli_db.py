"""`patchgate db …` against real SQLite and PostgreSQL, and from an installed wheel."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import migrate
from bot.cli.main import main
from tests.dbutil import BACKENDS, fresh_database_url
from workflows.db import normalise_database_url
from workflows.models import Base

REPO = Path(__file__).resolve().parents[2]
MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture(autouse=True)
def _quiet_empty_cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No .env from the checkout, no stray patchgate.db in it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATCHGATE_LOG_LEVEL", "WARNING")


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        monkeypatch.setenv("PATCHGATE_DATABASE_URL", url)
        yield url


def tables(url: str) -> set[str]:
    engine = sa.create_engine(normalise_database_url(url).sync_url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out.strip(), err.strip()


def test_db_upgrade_creates_the_schema_and_downgrade_base_removes_it_and_upgrade_restores_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (head,) = migrate.heads()

    assert run(capsys, "db", "current") == (0, "base (empty)", "")
    assert run(capsys, "db", "upgrade") == (0, f"base (empty) -> {head}", "")
    assert tables(database_url) == MODEL_TABLES
    assert run(capsys, "db", "current") == (0, head, "")

    assert run(capsys, "db", "downgrade", "base") == (0, f"{head} -> base (empty)", "")
    assert tables(database_url) == set()

    assert run(capsys, "db", "upgrade", "head") == (0, f"base (empty) -> {head}", "")
    assert tables(database_url) == MODEL_TABLES


def test_db_upgrade_twice_changes_nothing_the_second_time(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (head,) = migrate.heads()
    run(capsys, "db", "upgrade")

    assert run(capsys, "db", "upgrade") == (0, f"{head} -> {head}", "")


def test_db_downgrade_minus_one_steps_back_one_revision(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (head,) = migrate.heads()
    run(capsys, "db", "upgrade")

    rc, out, _ = run(capsys, "db", "downgrade", "-1")

    assert rc == 0
    assert out.startswith(f"{head} -> ")
    assert migrate.current(normalise_database_url(database_url)) != head


def test_db_downgrade_without_a_revision_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["db", "downgrade"])

    assert exc.value.code == 2
    assert "revision" in capsys.readouterr().err


def test_db_upgrade_to_an_unknown_revision_fails_with_one_clear_line(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "db", "upgrade", "0123456789ab")

    assert rc == 1
    assert err.splitlines() == [
        "patchgate: migration: Can't locate revision identified by '0123456789ab'"
    ]
    assert tables(database_url) == set()


def test_db_current_on_a_missing_sqlite_file_says_base_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db_file = tmp_path / "absent.db"
    monkeypatch.setenv("PATCHGATE_DATABASE_URL", f"sqlite:///{db_file}")

    assert run(capsys, "db", "current") == (0, "base (empty)", "")
    assert not db_file.exists()


def test_db_heads_check_exits_zero_with_exactly_one_head(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(capsys, "db", "heads", "--check") == (0, migrate.heads()[0], "")


def test_db_heads_check_exits_one_when_the_migrations_have_two_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of the migrations plus a second revision branching from the same parent.
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (head,) = migrate.heads()
    (scripts / "versions" / "20990101_feedfacecafe_branch.py").write_text(
        f'"""A second branch."""\n\nrevision = "feedfacecafe"\ndown_revision = {head!r}\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    (scripts / "versions" / "20990101_deadbeef0000_other.py").write_text(
        f'"""Another branch."""\n\nrevision = "deadbeef0000"\ndown_revision = {head!r}\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    monkeypatch.setattr(migrate, "migrations_dir", lambda: scripts)

    rc, out, err = run(capsys, "db", "heads", "--check")

    assert rc == 1
    assert sorted(out.splitlines()) == ["deadbeef0000", "feedfacecafe"]
    assert "expected exactly one migration head, found 2" in err
    # Without --check the heads are only listed.
    assert run(capsys, "db", "heads")[0] == 0


def test_migrations_ship_in_the_wheel_and_db_upgrade_works_from_an_installed_copy(
    tmp_path: Path,
) -> None:
    wheels, target, workdir = tmp_path / "wheels", tmp_path / "site", tmp_path / "empty"
    workdir.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("patchgate-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    db_file = workdir / "installed.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")},
        "PYTHONPATH": str(target),
        "PATCHGATE_DATABASE_URL": f"sqlite:///{db_file}",
        "PATCHGATE_LOG_LEVEL": "WARNING",
    }
    probe = (
        "import sys, bot.migrate as m; from bot.cli.main import main; "
        "print(m.migrations_dir()); sys.exit(main(['db', 'upgrade']))"
    )

    # -I would also drop PYTHONPATH, so -P keeps the empty cwd off sys.path instead.
    proc = subprocess.run(
        [sys.executable, "-P", "-c", probe], cwd=workdir, env=env, capture_output=True, text=True
    )

    assert proc.returncode == 0, proc.stderr
    used_dir, result = proc.stdout.strip().splitlines()
    assert Path(used_dir) == target / "bot" / "migrations"
    assert result == f"base (empty) -> {migrate.heads()[0]}"
    with sqlite3.connect(db_file) as conn:
        found = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert found - {"alembic_version"} == MODEL_TABLES
