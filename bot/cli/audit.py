"""CLI group: audit — check, prune and key the keyed, hash-chained event log.

``patchgate audit verify [--archive FILE ...] [--witness FILE --public-key PEM]`` walks
every event in one read snapshot (from the newest signed prune checkpoint, if the log was
pruned), checking each MAC with the audit key its key id names, and reports the first
row that does not verify (exit 1), or how many events verified (exit 0); each
``--archive`` file is checked on its own and against the checkpoint that names it; each
witnessed head (signed, outside the database) must still be in the chain.

``patchgate audit rotate-key`` (admins) marks a new PATCHGATE_AUDIT_KEY in the chain;
``patchgate audit keygen --private F --public F`` writes an Ed25519 key pair.

``patchgate audit prune --before TIME [--archive DIR] [--dry-run]`` archives the events
before TIME and removes them, leaving a checkpoint signed with PATCHGATE_AUDIT_KEY
(admins only; the last PATCHGATE_AUDIT_MIN_RETENTION_DAYS days are always kept). A bad
or too recent TIME exits 2 and changes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import (
    cli_clock,
    command,
    group,
    maintenance_actor,
    open_database,
    print_json,
    schema_hint,
)
from bot.settings import Settings
from workflows import audit
from workflows.db import read_only, unit_of_work
from workflows.errors import AuditChainBroken, ConfigError, InputError
from workflows.timeparse import parse_time

USAGE_ERROR = 2


def _keys(settings: Settings, why: str) -> audit.AuditKeys:
    keys = settings.audit_keys
    if keys is None:
        raise ConfigError([f"PATCHGATE_AUDIT_KEY: required {why}"])
    return keys


def _public_keys(args: argparse.Namespace, settings: Settings) -> list[audit.PublicKey]:
    keys = [audit.load_public_key(path) for path in args.public_key or []]
    if not keys and settings.signing_key is not None:
        keys.append(audit.load_signer(settings.signing_key).public)
    if not keys:
        raise ConfigError(
            ["--public-key FILE (or PATCHGATE_SIGNING_KEY): required to check a witness file"]
        )
    return keys


def _broken(exc: AuditChainBroken, *, as_json: bool, suffix: str = "") -> int:
    if as_json:
        print_json({"ok": False, "event_id": exc.event_id, "reason": str(exc)})
    elif str(exc).startswith("event "):
        print(f"audit chain BROKEN at {exc}{suffix}")
    else:
        print(f"audit chain BROKEN: {exc}{suffix}")
    return 1


async def verify(args: argparse.Namespace, settings: Settings) -> int:
    keys = settings.audit_keys
    archives: list[Path] = args.archive or []
    witness: list[audit.Witnessed] = []
    db = open_database(settings)
    results: list[audit.ArchiveResult] = []
    matched = 0
    try:
        if args.witness:
            public = _public_keys(args, settings)
            for path in args.witness:
                witness.extend(audit.read_witness(path, public))
        with schema_hint():
            result = await audit.verify_database(
                db, keys=keys, want_seqs=audit.wanted_seqs(witness)
            )
            matched = audit.check_witnessed(result, witness, start=result.checkpoint)
            known: list[audit.Checkpoint] | None = None
            if archives:
                async with read_only(db) as session:
                    known = await audit.checkpoints(
                        session, keys=_keys(settings, "to check archives")
                    )
            for path in archives:
                results.append(audit.verify_archive(path, checkpoints=known, keys=keys))
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
                "unkeyed": result.unkeyed,
                "key_ids": list(result.key_ids),
                "witnessed": {"heads": len(witness), "matched": matched},
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
    if witness:
        print(
            f"witness OK: {len(witness)} witnessed head(s) checked, {matched} against events "
            "still in the database"
        )
    if result.unkeyed:
        print(
            f"UNKEYED: {result.unkeyed} event(s) carry no MAC (written without an audit key): "
            "a database writer could rewrite them unseen; see docs/reliability.md"
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
    key = _keys(settings, "to prune: it signs the checkpoint that the remaining events verify from")
    # a maintenance command: whoever holds the database credentials (and the audit key)
    # is an administrator; the actor recorded is a label (bot.cli.common.maintenance_actor)
    actor = maintenance_actor()
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
    runs = [] if args.dry_run else _prune_ansible_runs(settings)
    if args.json:
        print_json(
            {
                "ansible_runs_removed": runs,
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
    if runs:
        days = settings.ansible_artifacts_retention_days
        print(
            f"removed {len(runs)} Ansible job directories older than {days} days "
            f"from {settings.ansible_artifacts_dir}"
        )
    return 0


def _prune_ansible_runs(settings: Settings) -> list[str]:
    """Retention of the Ansible backend's per-batch artifacts (evidence of the runs):
    job directories untouched for PATCHGATE_ANSIBLE_ARTIFACTS_RETENTION_DAYS, except a
    run that may still be going."""
    from integrations.backends.ansible.runs import prune_artifacts

    days = settings.ansible_artifacts_retention_days
    return prune_artifacts(settings.ansible_artifacts_dir.expanduser(), older_than=days * 86400)


async def rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    """Append ``audit.key_rotated``, MAC'd (with the head) by the current key."""
    keys = _keys(settings, "to rotate: the new key MACs the events from now on")
    # a maintenance command, like prune: holding the database and the audit key is the authority
    actor = maintenance_actor()
    new_id = audit.key_id(keys.current())
    db = open_database(settings)
    try:
        with schema_hint():
            async with unit_of_work(db) as session:
                await audit.lock(session)
                head = await audit.read_head(session)
                previous = None if head is None else head.key_id
                event = await audit.append(
                    session,
                    kind="audit.key_rotated",
                    data={"key_id": new_id, "previous_key_id": previous},
                    at=cli_clock(settings).now(),
                    actor=actor,
                )
                seq = audit_seq(event.body)
    finally:
        await db.dispose()
    if args.json:
        print_json({"key_id": new_id, "previous_key_id": previous, "seq": seq})
    else:
        print(
            f"audit key {new_id} MACs the chain from seq {seq} on (previous: "
            f"{previous or 'unkeyed'}); keep the old key in PATCHGATE_AUDIT_OLD_KEYS"
        )
    return 0


def audit_seq(body: str) -> int:
    seq: int = json.loads(body)["seq"]
    return seq


async def keygen(args: argparse.Namespace, settings: Settings) -> int:
    try:
        public = audit.generate_keypair(args.private, args.public)
    except InputError as exc:
        return _usage(str(exc))
    if args.json:
        print_json(
            {"key_id": public.key_id, "private": str(args.private), "public": str(args.public)}
        )
    else:
        print(
            f"wrote {args.private} (private, 0600: PATCHGATE_SIGNING_KEY) and {args.public} "
            f"(public: give it to auditors); key id {public.key_id}"
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
    verify_cmd.add_argument(
        "--witness",
        action="append",
        type=Path,
        metavar="FILE",
        help="check the database against every signed head in this witness file (repeatable)",
    )
    verify_cmd.add_argument(
        "--public-key",
        action="append",
        type=Path,
        metavar="FILE",
        help="public key(s) the witness lines are signed with (default: PATCHGATE_SIGNING_KEY's)",
    )
    command(
        audit_group,
        "rotate-key",
        rotate_key,
        "After setting a new PATCHGATE_AUDIT_KEY (the old one in PATCHGATE_AUDIT_OLD_KEYS): "
        "append audit.key_rotated, MAC'd with the new key (admins).",
        json_flag=True,
    )
    keygen_cmd = command(
        audit_group,
        "keygen",
        keygen,
        "Write a new Ed25519 key pair (signs bundles and witnessed heads).",
        json_flag=True,
    )
    keygen_cmd.add_argument("--private", type=Path, required=True, metavar="FILE")
    keygen_cmd.add_argument("--public", type=Path, required=True, metavar="FILE")
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
