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

The lock and the Alembic context options are in ``workflows.migrations``, shared with
``alembic/env.py`` (which must not import ``bot``).

These functions are synchronous (Alembic is); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from workflows.db import DatabaseURLs
from workflows.errors import InputError
from workflows.migrations import context_options, create_migration_engine, locked_connection

__all__ = [
    "MigrationResult",
    "alembic_config",
    "context_options",
    "create_migration_engine",
    "current",
    "downgrade",
    "heads",
    "locked_connection",
    "migrations_dir",
    "upgrade",
]


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
