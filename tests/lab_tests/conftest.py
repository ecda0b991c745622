"""Lab fixtures (tests/lab/fixtures.py) and a SQLite database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.dbutil import fresh_database_url
from tests.lab.fixtures import lab  # noqa: F401
from workflows.db import Database, create_database
from workflows.models import Base


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    with fresh_database_url("sqlite", tmp_path) as url:
        database = create_database(url)
        async with database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        try:
            yield database
        finally:
            await database.dispose()
