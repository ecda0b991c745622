"""Audit retention: ``audit prune`` archives old events and leaves a signed checkpoint.

A prune removes a *prefix* of the chain: the events, in id order, before the first
event at or after ``before``. It works in three steps:

1. In a read snapshot, the prefix is read in chunks, checked link by link from the
   newest checkpoint (a broken chain is never pruned: that would destroy the evidence)
   and written to a gzip'd JSON Lines archive in the archive directory: a header line
   (where it starts: the previous checkpoint's seq and hash, or the genesis), one line
   per event (its columns, with the body text and both hashes, so it verifies alone)
   and a trailer (count, last hash). The file is written to a temporary name, synced
   and renamed; its bytes depend only on the events (gzip ``mtime=0``), so a re-run
   after a crash writes the same file again.
2. One write transaction, serialised with appends by the same lock (advisory lock on
   PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite): the newest checkpoint must still be the
   one the archive starts from; an ``audit.pruned`` event is appended (before the
   delete, so on SQLite the events' largest rowid is never freed and reused), the
   checkpoint row is inserted with its HMAC-SHA256 signature and the prefix deleted.
3. Commit. A re-run finds nothing before ``before`` and changes nothing.

The archive files themselves are written and verified by ``_archive``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.audit._archive import ARCHIVE_FORMAT, ArchiveWriter, archive_name, prepare_dir
from workflows.audit._chain import SESSION_KEYS, append, format_time, lock
from workflows.audit._checkpoints import (
    Checkpoint,
    check_checkpoints,
    checkpoint_rows,
    key_id,
    sign_checkpoint,
)
from workflows.audit._keys import AuditKeys
from workflows.audit._verify import check_row
from workflows.db import Database, unit_of_work
from workflows.errors import Conflict, InputError
from workflows.models import AuditCheckpoint, Event

CHUNK = 1000
EVENT_COLUMNS = (
    "id",
    "at",
    "kind",
    "rollout_id",
    "actor",
    "body",
    "prev_hash",
    "hash",
    "key_id",
)


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, with ``dry_run``, would remove); ``count == 0``: nothing."""

    before: dt.datetime
    count: int
    first_seq: int = 0
    last_seq: int = 0
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    last_event_id: int = 0
    last_hash: str = ""
    archive: Path | None = None  # where the archive is (or, on a dry run, would be)
    archive_sha256: str | None = None  # None on a dry run
    dry_run: bool = False


def check_min_age(before: dt.datetime, *, now: dt.datetime, min_age: dt.timedelta) -> None:
    """Refuse a cut younger than the minimum retention (InputError)."""
    if before.tzinfo is None or before.utcoffset() is None:
        raise InputError("the prune time must carry a time zone")
    latest = now - min_age
    if before > latest:
        days = min_age / dt.timedelta(days=1)
        raise InputError(
            f"--before {format_time(before)} is too recent: the last {days:g} days of "
            f"events are kept (PATCHGATE_AUDIT_MIN_RETENTION_DAYS); the latest allowed is "
            f"{format_time(latest)}"
        )


async def _prefix_end(session: AsyncSession, before: dt.datetime) -> int | None:
    """The id of the last event of the prunable prefix (events in id order before the
    first one at or after ``before``), or None if it is empty."""
    first_kept = await session.scalar(sa.select(sa.func.min(Event.id)).where(Event.at >= before))
    query = sa.select(sa.func.max(Event.id))
    if first_kept is not None:
        query = query.where(Event.id < first_kept)
    last: int | None = await session.scalar(query)
    return last


async def _read_prefix(
    session: AsyncSession,
    *,
    last_id: int,
    start: Checkpoint,
    before: dt.datetime,
    out: Callable[[dict[str, Any]], None] | None,
    keys: AuditKeys,
) -> PruneResult:
    """Check the events up to ``last_id`` link by link from ``start``; write each to
    ``out`` (an archive line) if given."""
    cols = [getattr(Event, name) for name in EVENT_COLUMNS]
    prev_hash, prev_what, seq = start.prev_hash, start.description, start.seq
    first_at: dt.datetime | None = None
    last_row: Any = None
    after: int | None = None
    keyed = False
    while True:
        query = sa.select(*cols).where(Event.id <= last_id).order_by(Event.id).limit(CHUNK)
        if after is not None:
            query = query.where(Event.id > after)
        rows = (await session.execute(query)).all()
        for row in rows:
            seq += 1
            keyed = check_row(
                row,
                prev_hash=prev_hash,
                prev_what=prev_what,
                expected_seq=seq,
                keys=keys,
                keyed_before=keyed,
            )
            if out is not None:
                out(
                    {
                        "id": row.id,
                        "seq": seq,
                        "at": format_time(row.at),
                        "kind": row.kind,
                        "rollout_id": row.rollout_id,
                        "actor": row.actor,
                        "body": row.body,
                        "prev_hash": row.prev_hash,
                        "hash": row.hash,
                        "key_id": row.key_id,
                    }
                )
            first_at = first_at or row.at
            prev_hash, prev_what, after, last_row = row.hash, f"event {row.id}", row.id, row
        if len(rows) < CHUNK:
            break
    if last_row is None:  # pragma: no cover (the caller saw at least one row)
        raise Conflict("the events to prune are gone; run it again")
    return PruneResult(
        before=before,
        count=seq - start.seq,
        first_seq=start.seq + 1,
        last_seq=seq,
        first_at=first_at,
        last_at=last_row.at,
        last_event_id=last_row.id,
        last_hash=last_row.hash,
    )


async def prune(
    db: Database,
    *,
    before: dt.datetime,
    now: dt.datetime,
    archive_dir: Path,
    key: bytes | AuditKeys,
    actor: str,
    min_age: dt.timedelta,
    dry_run: bool = False,
) -> PruneResult:
    """Archive and remove the events before ``before``; see the module docstring.

    Raises InputError (too recent a cut), AuditChainBroken (the prefix or a checkpoint
    does not verify: nothing is pruned), Conflict (another prune won the race).
    """
    check_min_age(before, now=now, min_age=min_age)
    keys = key if isinstance(key, AuditKeys) else AuditKeys(key=key)
    signer = keys.current()
    if not dry_run:
        prepare_dir(archive_dir)
    async with db.read_sessions() as session:
        try:
            if db.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            start = check_checkpoints(await checkpoint_rows(session), keys=keys)
            last_id = await _prefix_end(session, before)
            if last_id is None:
                return PruneResult(before=before, count=0, dry_run=dry_run)
            if dry_run:
                found = await _read_prefix(
                    session, last_id=last_id, start=start, before=before, out=None, keys=keys
                )
                name = archive_name(found.first_seq, found.last_seq)
                return dataclasses.replace(found, archive=archive_dir / name, dry_run=True)
            writer = ArchiveWriter(archive_dir)
            try:
                writer.line(
                    {"format": ARCHIVE_FORMAT, "prev_seq": start.seq, "prev_hash": start.prev_hash}
                )
                found = await _read_prefix(
                    session,
                    last_id=last_id,
                    start=start,
                    before=before,
                    out=writer.line,
                    keys=keys,
                )
                writer.line(
                    {
                        "end": True,
                        "count": found.count,
                        "last_seq": found.last_seq,
                        "last_hash": found.last_hash,
                    }
                )
                final = archive_dir / archive_name(found.first_seq, found.last_seq)
                digest = writer.settle(final)
            finally:
                writer.discard()
        finally:
            await session.rollback()

    async with unit_of_work(db) as session:
        session.info[SESSION_KEYS] = keys  # the audit.pruned event is MAC'd with the key too
        await lock(session)
        rows = await checkpoint_rows(session)
        if (rows[-1].seq if rows else 0) != start.seq:
            raise Conflict("another prune finished first; run it again")
        last = await session.get(Event, found.last_event_id)
        if last is None or last.hash != found.last_hash:
            raise Conflict(f"event {found.last_event_id} changed while it was archived")
        await append(
            session,
            kind="audit.pruned",
            data={
                "before": before,
                "count": found.count,
                "first_seq": found.first_seq,
                "last_seq": found.last_seq,
                "last_hash": found.last_hash,
                "archive": final.name,
                "archive_sha256": digest,
            },
            at=now,
            actor=actor,
        )
        checkpoint = AuditCheckpoint(
            seq=found.last_seq,
            event_id=found.last_event_id,
            hash=found.last_hash,
            event_at=found.last_at,
            prev_seq=start.seq,
            prev_hash=start.prev_hash,
            count=found.count,
            before=before,
            archive_name=final.name,
            archive_sha256=digest,
            created_at=now,
            created_by=actor,
            key_id=key_id(signer),
        )
        checkpoint.signature = sign_checkpoint(checkpoint, key=signer)
        session.add(checkpoint)
        await session.execute(sa.delete(Event).where(Event.id <= found.last_event_id))
    return dataclasses.replace(found, archive=final, archive_sha256=digest)
