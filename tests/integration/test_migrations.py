"""Alembic migrations against real SQLite and PostgreSQL databases, through bot.migrate."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot import migrate
from tests.dbutil import BACKENDS, fresh_database_url
from workflows.db import DatabaseURLs, normalise_database_url
from workflows.models import Base

REPO = Path(__file__).resolve().parents[2]
MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=BACKENDS)
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseURLs]:
    """A new, empty database for each test (migrations need a clean start)."""
    with fresh_database_url(request.param, tmp_path) as url:
        yield normalise_database_url(url)


def tables(urls: DatabaseURLs) -> set[str]:
    engine = sa.create_engine(urls.sync_url)
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def schema_differences(urls: DatabaseURLs) -> list[object]:
    engine = migrate.create_migration_engine(urls)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=migrate.context_options(urls.dialect))
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def check_constraint_names(urls: DatabaseURLs) -> set[tuple[str, str]]:
    engine = sa.create_engine(urls.sync_url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                (table, str(ck["name"]))
                for table in MODEL_TABLES
                for ck in inspector.get_check_constraints(table)
            }
    finally:
        engine.dispose()


def upgrade_in_subprocess(urls: DatabaseURLs, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PATCHGATE_DATABASE_URL": urls.sync_url, "PATCHGATE_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "db", "upgrade"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_upgrade_on_an_empty_database_creates_every_table_of_the_models(
    urls: DatabaseURLs,
) -> None:
    (head,) = migrate.heads()

    result = migrate.upgrade(urls)

    assert result == migrate.MigrationResult(before=None, after=head)
    assert tables(urls) == MODEL_TABLES | {"alembic_version"}
    assert migrate.current(urls) == head


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    urls: DatabaseURLs,
) -> None:
    (head,) = migrate.heads()
    migrate.upgrade(urls)

    result = migrate.downgrade(urls, "base")

    assert result == migrate.MigrationResult(before=head, after=None)
    assert tables(urls) - {"alembic_version"} == set()
    assert migrate.current(urls) is None

    migrate.upgrade(urls)
    assert tables(urls) == MODEL_TABLES | {"alembic_version"}
    assert migrate.current(urls) == head


def test_migrated_schema_has_no_difference_from_the_models(urls: DatabaseURLs) -> None:
    migrate.upgrade(urls)

    assert schema_differences(urls) == []


def test_migrated_schema_has_every_named_check_constraint_of_the_models(
    urls: DatabaseURLs,
) -> None:
    # compare_metadata does not look at CHECK constraints, so they are compared here.
    expected = {
        (table.name, str(constraint.name))
        for table in Base.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, sa.CheckConstraint)
    }
    assert expected, "the models define CHECK constraints on their states"
    migrate.upgrade(urls)

    assert check_constraint_names(urls) == expected


def test_an_empty_database_differs_from_the_models(urls: DatabaseURLs) -> None:
    # The comparison the tests above rely on does see a missing schema.
    assert len(schema_differences(urls)) >= len(MODEL_TABLES)


def test_the_migrations_have_exactly_one_head() -> None:
    assert len(migrate.heads()) == 1


def test_revision_files_import_only_alembic_and_sqlalchemy() -> None:
    versions = sorted((migrate.migrations_dir() / "versions").glob("*.py"))
    assert versions
    for path in versions:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in ("alembic", "sqlalchemy"), (path.name, module)


def test_the_alembic_environment_imports_nothing_from_bot() -> None:
    """env.py runs under the plain ``alembic`` command too, and ships as bot/migrations:
    what it needs (lock, context options) comes from workflows, never from the bot."""
    path = REPO / "alembic" / "env.py"
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
        elif isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
    assert "workflows.migrations" in imported
    assert [m for m in imported if m.split(".")[0] == "bot"] == []


def test_revision_files_are_date_prefixed_and_have_a_real_downgrade() -> None:
    for path in sorted((migrate.migrations_dir() / "versions").glob("*.py")):
        assert path.name[:8].isdigit() and path.name[8] == "_", path.name
        functions = {
            node.name: node
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef)
        }
        body = functions["downgrade"].body
        assert not (len(body) == 1 and isinstance(body[0], ast.Pass)), path.name


def test_the_source_checkout_migrations_directory_is_the_repository_alembic_directory() -> None:
    assert migrate.migrations_dir() == REPO / "alembic"
    assert not (REPO / "alembic" / "__init__.py").exists()


def test_several_processes_upgrading_one_fresh_database_all_succeed_with_one_schema(
    urls: DatabaseURLs, tmp_path: Path
) -> None:
    (head,) = migrate.heads()

    procs = [upgrade_in_subprocess(urls, tmp_path) for _ in range(3)]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]

    assert [rc for rc, _, _ in outcomes] == [0, 0, 0], outcomes
    lines = sorted(out.strip() for _, out, _ in outcomes)
    # Exactly one process migrated; the others waited for the lock and found nothing to do.
    assert lines == sorted([f"base (empty) -> {head}", f"{head} -> {head}", f"{head} -> {head}"])
    assert tables(urls) == MODEL_TABLES | {"alembic_version"}
    assert migrate.current(urls) == head
    assert schema_differences(urls) == []


def test_upgrade_waits_while_another_process_holds_the_migration_lock(
    urls: DatabaseURLs, tmp_path: Path
) -> None:
    with migrate.locked_connection(urls):
        proc = upgrade_in_subprocess(urls, tmp_path)
        time.sleep(4)  # ample time for an unlocked upgrade to finish
        assert proc.poll() is None, proc.communicate()
        assert migrate.current(urls) is None

    assert proc.wait(timeout=60) == 0, proc.communicate()
    assert migrate.current(urls) == migrate.heads()[0]
