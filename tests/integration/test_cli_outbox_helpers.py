"""Helpers, no tests: run `patchgate` as a subprocess on a SQLite file made by create_all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflows.db import Database, create_database
from workflows.models import Base

REPO = Path(__file__).resolve().parents[2]


def make_database(path: Path, fill: Callable[[Database], Awaitable[Any]] | None = None) -> str:
    """Create the schema in a new SQLite file, let ``fill`` add rows; return the URL."""
    url = f"sqlite:///{path}"

    async def build() -> None:
        db = create_database(url)
        try:
            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            if fill is not None:
                await fill(db)
        finally:
            await db.dispose()

    asyncio.run(build())
    return url


def execute(url: str, sql: str, **params: Any) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def patchgate(url: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATCHGATE_DATABASE_URL": url,
        "PATCHGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,  # no .env from the checkout
        timeout=60,
        check=False,
    )
