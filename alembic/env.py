"""Alembic environment for PatchGate.

Run two ways:

- by ``bot/migrate.py`` (``patchgate db …``): it sets ``sqlalchemy.url`` and hands over a
  connection that already holds the migration lock in ``config.attributes["connection"]``;
- by the plain ``alembic`` command from the repository (alembic.ini): the URL comes from
  PATCHGATE_DATABASE_URL (default sqlite:///patchgate.db) and the lock is taken here.

The options (compare_type, render_as_batch on SQLite, how UTCDateTime renders) and the
lock live in workflows.migrations, shared with bot/migrate.py and the tests that compare
schema and models; nothing here imports ``bot`` (this file ships inside the wheel as
``bot/migrations`` but is not part of the bot).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from workflows.db import DatabaseURLs, normalise_database_url
from workflows.migrations import context_options, locked_connection
from workflows.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _urls() -> DatabaseURLs:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "PATCHGATE_DATABASE_URL", "sqlite:///patchgate.db"
    )
    return normalise_database_url(url)


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        **context_options(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    urls = _urls()
    context.configure(
        url=urls.sync_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(urls.dialect),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with locked_connection(_urls()) as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
