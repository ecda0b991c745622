"""Schema migrations: Alembic driven from code, safe to run from several processes at once.

Nothing here reads ``alembic.ini`` or depends on the current directory: the Alembic
``Config`` is built in code and points at :func:`migrations_dir`, which is
``bot/migrations`` inside an installed wheel and ``<repo>/alembic`` in a checkout.

Every migration holds a lock for its whole run, so several replicas (or a release
step and a replica) may call :func:`upgrade` together; the first one migrates, the
others wait and then find nothing to do:

- PostgreSQL: ``pg_advisory_lock(MIGRATION_LOCK_KEY)`` on a dedicated connection, and
  the migration runs on that same connection (``config.attributes["connection"]``).
- SQLite: an exclusive ``fcntl.flock`` on ``<dbfile>.migrate.lock``.

These functions are synchronous (Alembic is); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from workflows.db import SQLITE_BUSY_TIMEOUT_MS, DatabaseURLs
from workflows.errors import ConfigError, InputError
from workflows.models import UTCDateTime

# Key of the PostgreSQL advisory lock held while migrating ("PGmigrat" in ASCII).
MIGRATION_LOCK_KEY = 0x5047_6D69_6772_6174


@dataclass(frozen=True)
class MigrationResult:
    """The schema revision before and after a migration (None: no schema)."""

    before: str | None
    after: str | None


def migrations_dir() -> Path:
    """The Alembic script directory: ``bot/migrations`` when installed, else ``<repo>/alembic``."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"no migrations found: neither {package / 'migrations'} nor {package.parent / 'alembic'}"
    )


def alembic_config(urls: DatabaseURLs) -> Config:
    """An Alembic Config for this database, built without alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Config values go through configparser interpolation: escape a %-encoded password.
    config.set_main_option("sqlalchemy.url", urls.sync_url.replace("%", "%%"))
    return config


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render project types as plain SQLAlchemy types, so revisions import only sqlalchemy."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options(dialect: str) -> dict[str, Any]:
    """Options for ``context.configure`` (env.py) and for autogenerate comparisons (tests).

    ``transactional_ddl`` holds on SQLite too, because :func:`create_migration_engine`
    makes SQLAlchemy, not the driver, emit BEGIN: a failed migration leaves no half schema.
    """
    return {
        "compare_type": True,
        "render_as_batch": dialect == "sqlite",
        "render_item": render_item,
        "transactional_ddl": True,
    }


def create_migration_engine(urls: DatabaseURLs) -> sa.Engine:
    """A synchronous engine for migrations (no pooling: closing a connection releases its locks)."""
    if urls.dialect != "sqlite":
        return sa.create_engine(urls.sync_url, poolclass=NullPool)
    engine = sa.create_engine(
        urls.sync_url,
        poolclass=NullPool,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN, so DDL is transactional
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("patchgate_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise ConfigError(
            [f"PATCHGATE_DATABASE_URL: directory {path.parent} does not exist"]
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def locked_connection(urls: DatabaseURLs) -> Iterator[sa.Connection]:
    """A connection to migrate on, holding the migration lock until the block ends."""
    engine = create_migration_engine(urls)
    try:
        if urls.dialect == "postgresql":
            with engine.connect() as conn:
                conn.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK_KEY)))
                conn.commit()  # a session-level lock: it outlives this transaction
                yield conn
                # On an error the connection is closed instead, which releases the lock.
                conn.rollback()
                conn.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK_KEY)))
                conn.commit()
        else:
            path = urls.sqlite_path
            assert path is not None  # normalise_database_url refuses SQLite without a file
            with _file_lock(Path(f"{path}.migrate.lock")), engine.connect() as conn:
                yield conn
    finally:
        engine.dispose()


def _revision_on(conn: sa.Connection) -> str | None:
    opts = context_options(conn.dialect.name)
    revision = MigrationContext.configure(conn, opts=opts).get_current_revision()
    conn.commit()  # leave no transaction open: Alembic then manages its own
    return revision


def _migrate(urls: DatabaseURLs, run: Any, revision: str) -> MigrationResult:
    config = alembic_config(urls)
    try:
        with locked_connection(urls) as conn:
            config.attributes["connection"] = conn
            before = _revision_on(conn)
            run(config, revision)
            after = _revision_on(conn)
    except CommandError as exc:
        raise InputError(f"migration: {exc}") from exc
    return MigrationResult(before=before, after=after)


def upgrade(urls: DatabaseURLs, revision: str = "head") -> MigrationResult:
    """Upgrade the schema to ``revision`` (default: the latest), under the migration lock."""
    return _migrate(urls, command.upgrade, revision)


def downgrade(urls: DatabaseURLs, revision: str) -> MigrationResult:
    """Downgrade the schema to ``revision`` (``base`` removes it; ``-1`` is one step)."""
    return _migrate(urls, command.downgrade, revision)


def current(urls: DatabaseURLs) -> str | None:
    """The database's schema revision; None when it has none (or the SQLite file is absent)."""
    path = urls.sqlite_path
    if path is not None and not Path(path).exists():
        return None
    engine = create_migration_engine(urls)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(patchgate_readonly=True)
            opts = context_options(urls.dialect)
            return MigrationContext.configure(conn, opts=opts).get_current_revision()
    except CommandError as exc:
        raise InputError(f"migration: {exc}") from exc
    finally:
        engine.dispose()


def heads() -> list[str]:
    """The head revisions of the migration scripts (exactly one, unless branches diverged)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return list(ScriptDirectory.from_config(config).get_heads())
