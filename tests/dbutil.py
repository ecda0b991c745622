"""Fresh real databases for tests: a SQLite file, or a new PostgreSQL database.

PostgreSQL comes from PATCHGATE_TEST_POSTGRES (default: the local server, user postgres).
Outside CI a missing server skips the PostgreSQL half; in CI (CI=true) it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

ADMIN_URL = os.environ.get(
    "PATCHGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")
# The audit key test processes on PostgreSQL run with (serve and appending commands refuse
# to run there without one; SQLite generates a key file beside the database).
TEST_AUDIT_KEY = "test-audit-key-" + "0123456789abcdef" * 2


def audit_key_env(url: str) -> dict[str, str]:
    """PATCHGATE_AUDIT_KEY for a process on ``url`` when it is PostgreSQL, else nothing."""
    return {"PATCHGATE_AUDIT_KEY": TEST_AUDIT_KEY} if url.startswith("postgres") else {}


def _admin_engine() -> sa.Engine:
    url = sa.engine.make_url(ADMIN_URL).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def postgres_available() -> bool:
    try:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except Exception:
        return False


def skip_or_fail_without_postgres() -> None:
    if postgres_available():
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} (CI must start it)")
    pytest.skip(f"PostgreSQL is not reachable at {ADMIN_URL}")


@contextmanager
def fresh_database_url(backend: str, tmp_dir: Path) -> Iterator[str]:
    """Yield the URL (in PATCHGATE_DATABASE_URL form) of a new, empty database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / f'pg-{uuid.uuid4().hex[:8]}.db'}"
        return
    skip_or_fail_without_postgres()
    name = f"patchgate_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
