"""CLI group: db — schema migrations (upgrade, downgrade, current, heads).

Each subcommand runs Alembic through bot.migrate in a worker thread (Alembic is
synchronous). ``db upgrade`` is safe to run from several replicas at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot import migrate
from bot.cli.common import command, group
from bot.settings import Settings


def _show(revision: str | None) -> str:
    return revision if revision is not None else "base (empty)"


async def upgrade(args: argparse.Namespace, settings: Settings) -> int:
    result = await asyncio.to_thread(migrate.upgrade, settings.database, args.revision)
    print(f"{_show(result.before)} -> {_show(result.after)}")
    return 0


async def downgrade(args: argparse.Namespace, settings: Settings) -> int:
    result = await asyncio.to_thread(migrate.downgrade, settings.database, args.revision)
    print(f"{_show(result.before)} -> {_show(result.after)}")
    return 0


async def current(args: argparse.Namespace, settings: Settings) -> int:
    revision = await asyncio.to_thread(migrate.current, settings.database)
    print(_show(revision))
    return 0


async def heads(args: argparse.Namespace, settings: Settings) -> int:
    found = await asyncio.to_thread(migrate.heads)
    for head in found:
        print(head)
    if args.check and len(found) != 1:
        print(
            f"patchgate: expected exactly one migration head, found {len(found)}; "
            "merge them (alembic merge heads) or rebase the newer revision",
            file=sys.stderr,
        )
        return 1
    return 0


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    db = group(sub, "db", "Database schema migrations.")

    parser = command(db, "upgrade", upgrade, "Upgrade the schema (default: to the latest).")
    parser.add_argument(
        "revision", nargs="?", default="head", help="target revision (default: head)"
    )

    parser = command(db, "downgrade", downgrade, "Downgrade the schema to a revision.")
    parser.add_argument("revision", help="target revision: an id, -1 for one step, base for none")

    command(db, "current", current, "Show the database's schema revision.")

    parser = command(db, "heads", heads, "Show the head revisions of the migrations.")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless there is exactly one head (for CI)"
    )
