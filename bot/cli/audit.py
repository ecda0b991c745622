"""CLI group: audit — check and prune the hash-chained event log.

``patchgate audit verify [--archive FILE ...]`` walks every event in one read snapshot
(from the newest signed prune checkpoint, if the log was pruned) and reports the first
row that does not verify (exit 1), or how many events verified (exit 0); each
``--archive`` file is checked on its own and against the checkpoint that names it.

``patchgate audit prune --before TIME [--archive DIR] [--dry-run]`` archives the events
before TIME and removes them, leaving a checkpoint signed with PATCHGATE_AUDIT_KEY
(admins only; the last PATCHGATE_AUDIT_MIN_RETENTION_DAYS days are always kept). A bad
or too recent TIME exits 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import (
    cli_actor,
    cli_clock,
    command,
    group,
    open_database,
    print_json,
    schema_hint,
)
from bot.settings import Settings
from workflows import audit
from workflows.db import read_only
from workflows.errors import AuditChainBroken, ConfigError, Forbidden, InputError
from workflows.timeparse import parse_time

USAGE_ERROR = 2


def _key(settings: Settings, why: str) -> bytes:
    if settings.audit_key is None:
        raise ConfigError([f"PATCHGATE_AUDIT_KEY: required {why}"])
    return settings.audit_key.get_secret_value().encode("utf-8")


def _broken(exc: AuditChainBroken, *, as_json: bool, suffix: str = "") -> int:
    if as_json:
        print_json({"ok": False, "event_id": exc.event_id, "reason": str(exc)})
    elif str(exc).startswith("event "):
        print(f"audit chain BROKEN at {exc}{suffix}")
    else:
        print(f"audit chain BROKEN: {exc}{suffix}")
    return 1


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    key = None if settings.audit_key is None else _key(settings, "")
    archives: list[Path] = args.archive or []
    db = open_database(settings)
    results: list[audit.ArchiveResult] = []
    try:
        with schema_hint():
            result = await audit.verify_database(db, key=key)
            known: list[audit.Checkpoint] | None = None
            if archives:
                async with read_only(db) as session:
                    known = await audit.checkpoints(
                        session, key=key or _key(settings, "to check archives")
                    )
            for path in archives:
                results.append(audit.verify_archive(path, checkpoints=known))
    except AuditChainBroken as exc:
        return _broken(exc, as_json=args.json)
    finally:
        await db.dispose()
    cp = result.checkpoint
    if args.json:
        print_json(
            {
                "ok": True,
                "events": result.count,
                "last_event_id": result.last_event_id,
                "last_hash": result.last_hash,
                "checkpoint": None
                if cp is None
                else {
                    "seq": cp.seq,
                    "hash": cp.prev_hash,
                    "before": cp.before,
                    "archive": cp.archive_name,
                    "archive_sha256": cp.archive_sha256,
                },
                "archives": [
                    {"file": str(r.path), "events": r.count, "last_seq": r.last_seq}
                    for r in results
                ],
            }
        )
        return 0
    if cp is None:
        print(f"audit chain OK: {result.count} events verified")
    else:
        print(
            f"audit chain OK: {result.count} events verified from the signed checkpoint "
            f"at seq {cp.seq} (events before {_when(cp.before)} pruned; archive "
            f"{cp.archive_name})"
        )
    for r in results:
        print(
            f"archive OK: {r.path.name}: {r.count} events (seq {r.prev_seq + 1}-{r.last_seq}), "
            f"as its checkpoint recorded"
        )
    return 0


def _when(value: dt.datetime | None) -> str:
    return "?" if value is None else audit.format_time(value)


def _usage(message: str) -> int:
    print(f"patchgate: {message}", file=sys.stderr)
    return USAGE_ERROR


async def prune(args: argparse.Namespace, settings: Settings) -> int:
    now = cli_clock(settings).now()
    try:
        before = parse_time(args.before, now=now, default_zone=settings.timezone)
        min_age = dt.timedelta(days=settings.audit_min_retention_days)
        audit.check_min_age(before, now=now, min_age=min_age)
    except InputError as exc:
        return _usage(f"--before: {exc}" if not str(exc).startswith("--before") else str(exc))
    key = _key(settings, "to prune: it signs the checkpoint that the remaining events verify from")
    actor = "cli"
    if not args.dry_run:
        who = cli_actor(settings)
        if who.user_id not in settings.admin_ids:
            raise Forbidden(f"{who.user_id} is not in PATCHGATE_ADMINS: only admins may prune")
        actor = who.user_id
    archive_dir: Path = (args.archive or settings.audit_archive_dir).expanduser()
    db = open_database(settings)
    try:
        with schema_hint():
            result = await audit.prune(
                db,
                before=before,
                now=now,
                archive_dir=archive_dir,
                key=key,
                actor=actor,
                min_age=min_age,
                dry_run=args.dry_run,
            )
    except AuditChainBroken as exc:
        return _broken(exc, as_json=args.json, suffix="; nothing was pruned")
    except InputError as exc:
        return _usage(str(exc))
    finally:
        await db.dispose()
    if args.json:
        print_json(
            {
                "dry_run": result.dry_run,
                "before": audit.format_time(result.before),
                "events": result.count,
                "first_seq": result.first_seq or None,
                "last_seq": result.last_seq or None,
                "first_at": result.first_at,
                "last_at": result.last_at,
                "last_hash": result.last_hash or None,
                "archive": str(result.archive) if result.archive else None,
                "archive_sha256": result.archive_sha256,
            }
        )
        return 0
    if result.count == 0:
        print(f"nothing to prune: no events before {_when(before)} are left")
    elif result.dry_run:
        print(
            f"would prune {result.count} events (seq {result.first_seq}-{result.last_seq}, "
            f"{_when(result.first_at)} to {_when(result.last_at)}) into {result.archive}; "
            "nothing changed (dry run)"
        )
    else:
        print(
            f"pruned {result.count} events (seq {result.first_seq}-{result.last_seq}, "
            f"{_when(result.first_at)} to {_when(result.last_at)}) into {result.archive} "
            f"(sha256 {result.archive_sha256}); signed checkpoint at seq {result.last_seq}"
        )
    return 0


def register(sub: Any) -> None:
    """Add this group's subcommands."""
    audit_group = group(sub, "audit", "The hash-chained audit log.")
    verify_cmd = command(
        audit_group,
        "verify",
        verify,
        "Verify every event's hash and link, and the chain's head (from the signed "
        "checkpoint if the log was pruned).",
        json_flag=True,
    )
    verify_cmd.add_argument(
        "--archive",
        action="append",
        type=Path,
        metavar="FILE",
        help="also verify this prune archive and match it to its checkpoint (repeatable)",
    )
    prune_cmd = command(
        audit_group,
        "prune",
        prune,
        "Archive the events before a time to a file and remove them, keeping a signed "
        "checkpoint so the rest still verifies (admins; needs PATCHGATE_AUDIT_KEY).",
        json_flag=True,
    )
    prune_cmd.add_argument(
        "--before",
        required=True,
        metavar="TIME",
        help="prune events before this time (a date is its midnight in PATCHGATE_TIMEZONE)",
    )
    prune_cmd.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="where the archive file goes (default PATCHGATE_AUDIT_ARCHIVE_DIR)",
    )
    prune_cmd.add_argument(
        "--dry-run", action="store_true", help="show what would be pruned; change nothing"
    )
