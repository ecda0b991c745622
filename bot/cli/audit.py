"""CLI group: audit — check the hash-chained event log.

``patchgate audit verify`` walks every event in one read snapshot and reports the first
row that does not verify (exit 1), or how many events verified (exit 0).
"""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli.common import command, group, print_json, schema_hint
from bot.settings import Settings
from workflows import audit
from workflows.db import create_database
from workflows.errors import AuditChainBroken


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    db = create_database(settings.database)
    try:
        with schema_hint():
            result = await audit.verify_database(db)
    except AuditChainBroken as exc:
        if args.json:
            print_json({"ok": False, "event_id": exc.event_id, "reason": str(exc)})
        elif str(exc).startswith("event "):
            print(f"audit chain BROKEN at {exc}")
        else:
            print(f"audit chain BROKEN: {exc}")
        return 1
    finally:
        await db.dispose()
    if args.json:
        print_json(
            {
                "ok": True,
                "events": result.count,
                "last_event_id": result.last_event_id,
                "last_hash": result.last_hash,
            }
        )
    else:
        print(f"audit chain OK: {result.count} events verified")
    return 0


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    audit_group = group(sub, "audit", "The hash-chained audit log.")
    command(
        audit_group,
        "verify",
        verify,
        "Verify every event's hash and link, and the chain's head.",
        json_flag=True,
    )
