"""Shared fixtures: a fresh real database per test module, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from _pytest.logging import LogCaptureHandler
from hypothesis import settings

from tests.dbutil import BACKENDS, fresh_database_url
from workflows.db import Database, create_database
from workflows.models import Base

# CI runs property tests with a fixed seed: a landing is never failed by an example a
# previous run did not try. Local runs stay random, which is how new findings appear
# (docs/reliability.md; a finding becomes an explicit regression test).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger as the test found it. A CLI command run in-process sets up logging
    (bot/logging.py) with a handler on the test's captured stderr; left in place, every
    later test's log records fail on that closed stream ("Logging error") and are lost
    from the run's output. pytest's per-phase capture handlers are its own to remove."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and not isinstance(handler, LogCaptureHandler):
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers and not isinstance(handler, LogCaptureHandler):
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new empty database for this test module, once per backend."""
    with fresh_database_url(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The module's database with the schema created and emptied before each test."""
    database = create_database(database_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())
    try:
        yield database
    finally:
        await database.dispose()
