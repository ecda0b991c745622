"""The migration lock and Alembic's context options, shared by ``bot.migrate`` (the
``patchgate db`` commands) and ``alembic/env.py`` (which runs the migrations).

They live here, not in ``bot``, because ``alembic/env.py`` runs inside the wheel as
``bot/migrations`` and from a checkout through the plain ``alembic`` command alike, and
must not depend on the bot's faces. Every migration holds the lock for its whole run, so
several replicas (or a release step and a replica) may upgrade together; the first one
migrates, the others wait and then find nothing to do:

- PostgreSQL: ``pg_advisory_lock(MIGRATION_LOCK_KEY)`` on a dedicated connection, and
  the migration runs on that same connection.
- SQLite: an exclusive ``fcntl.flock`` on ``<dbfile>.migrate.lock``.

Synchronous, like Alembic.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from workflows.db import SQLITE_BUSY_TIMEOUT_MS, DatabaseURLs
from workflows.errors import ConfigError
from workflows.models import UTCDateTime

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext

__all__ = [
    "MIGRATION_LOCK_KEY",
    "context_options",
    "create_migration_engine",
    "locked_connection",
    "render_item",
]

# Key of the PostgreSQL advisory lock held while migrating ("PGmigrat" in ASCII).
MIGRATION_LOCK_KEY = 0x5047_6D69_6772_6174


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
