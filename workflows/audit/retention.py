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

:func:`verify_archive` checks an archive file alone (its chain from its header's start,
its trailer) and, given the checkpoints, that it is the one a checkpoint names (same
SHA-256, same last hash).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.db import Database, unit_of_work
from workflows.errors import AuditChainBroken, Conflict, InputError
from workflows.models import AuditCheckpoint, Event

ARCHIVE_FORMAT = "patchgate-audit-archive/1"
CHUNK = 1000
EVENT_COLUMNS = ("id", "at", "kind", "rollout_id", "actor", "body", "prev_hash", "hash")


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


def archive_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:010d}-{last_seq:010d}.jsonl.gz"


def _line(obj: dict[str, Any]) -> bytes:
    return (audit.canonical_json(obj) + "\n").encode("utf-8")


def check_min_age(before: dt.datetime, *, now: dt.datetime, min_age: dt.timedelta) -> None:
    """Refuse a cut younger than the minimum retention (InputError)."""
    if before.tzinfo is None or before.utcoffset() is None:
        raise InputError("the prune time must carry a time zone")
    latest = now - min_age
    if before > latest:
        days = min_age / dt.timedelta(days=1)
        raise InputError(
            f"--before {audit.format_time(before)} is too recent: the last {days:g} days of "
            f"events are kept (PATCHGATE_AUDIT_MIN_RETENTION_DAYS); the latest allowed is "
            f"{audit.format_time(latest)}"
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
    start: audit.Checkpoint,
    before: dt.datetime,
    out: Callable[[dict[str, Any]], None] | None,
) -> PruneResult:
    """Check the events up to ``last_id`` link by link from ``start``; write each to
    ``out`` (an archive line) if given."""
    cols = [getattr(Event, name) for name in EVENT_COLUMNS]
    prev_hash, prev_what, seq = start.prev_hash, start.description, start.seq
    first_at: dt.datetime | None = None
    last_row: Any = None
    after: int | None = None
    while True:
        query = sa.select(*cols).where(Event.id <= last_id).order_by(Event.id).limit(CHUNK)
        if after is not None:
            query = query.where(Event.id > after)
        rows = (await session.execute(query)).all()
        for row in rows:
            seq += 1
            audit.check_row(row, prev_hash=prev_hash, prev_what=prev_what, expected_seq=seq)
            if out is not None:
                out(
                    {
                        "id": row.id,
                        "seq": seq,
                        "at": audit.format_time(row.at),
                        "kind": row.kind,
                        "rollout_id": row.rollout_id,
                        "actor": row.actor,
                        "body": row.body,
                        "prev_hash": row.prev_hash,
                        "hash": row.hash,
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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--archive {directory}: not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--archive {directory}: {exc.strerror or exc}") from None


class _ArchiveWriter:
    """A gzip'd JSON Lines file written under a temporary name, then settled (synced and
    renamed) or discarded. Its bytes depend only on the lines written (gzip mtime 0)."""

    def __init__(self, directory: Path) -> None:
        self.tmp = directory / f".audit-prune-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        self._raw = open(self.tmp, "wb")  # noqa: SIM115 (closed by settle/discard)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)

    def line(self, obj: dict[str, Any]) -> None:
        self._gz.write(_line(obj))

    def _close(self) -> None:
        if not self._raw.closed:
            self._gz.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()

    def settle(self, final: Path) -> str:
        """Move the file to ``final``; return its SHA-256. An existing file with the same
        bytes is kept (a re-run after a crash); one with other bytes is refused."""
        self._close()
        digest = _sha256_file(self.tmp)
        if final.exists():
            if _sha256_file(final) != digest:
                raise Conflict(f"{final} exists with other contents; move it away, prune again")
            return digest
        os.replace(self.tmp, final)
        _fsync_dir(final.parent)
        return digest

    def discard(self) -> None:
        self._gz.close()
        self._raw.close()
        self.tmp.unlink(missing_ok=True)


async def prune(
    db: Database,
    *,
    before: dt.datetime,
    now: dt.datetime,
    archive_dir: Path,
    key: bytes,
    actor: str,
    min_age: dt.timedelta,
    dry_run: bool = False,
) -> PruneResult:
    """Archive and remove the events before ``before``; see the module docstring.

    Raises InputError (too recent a cut), AuditChainBroken (the prefix or a checkpoint
    does not verify: nothing is pruned), Conflict (another prune won the race).
    """
    check_min_age(before, now=now, min_age=min_age)
    if not dry_run:
        _prepare_dir(archive_dir)
    async with db.read_sessions() as session:
        try:
            if db.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            start = audit.check_checkpoints(await audit.checkpoint_rows(session), key=key)
            last_id = await _prefix_end(session, before)
            if last_id is None:
                return PruneResult(before=before, count=0, dry_run=dry_run)
            if dry_run:
                found = await _read_prefix(
                    session, last_id=last_id, start=start, before=before, out=None
                )
                name = archive_name(found.first_seq, found.last_seq)
                return dataclasses.replace(found, archive=archive_dir / name, dry_run=True)
            writer = _ArchiveWriter(archive_dir)
            try:
                writer.line(
                    {"format": ARCHIVE_FORMAT, "prev_seq": start.seq, "prev_hash": start.prev_hash}
                )
                found = await _read_prefix(
                    session, last_id=last_id, start=start, before=before, out=writer.line
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
        await audit.lock(session)
        rows = await audit.checkpoint_rows(session)
        if (rows[-1].seq if rows else 0) != start.seq:
            raise Conflict("another prune finished first; run it again")
        last = await session.get(Event, found.last_event_id)
        if last is None or last.hash != found.last_hash:
            raise Conflict(f"event {found.last_event_id} changed while it was archived")
        await audit.append(
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
            key_id=audit.key_id(key),
        )
        checkpoint.signature = audit.sign_checkpoint(checkpoint, key=key)
        session.add(checkpoint)
        await session.execute(sa.delete(Event).where(Event.id <= found.last_event_id))
    return dataclasses.replace(found, archive=final, archive_sha256=digest)


# --- archive files ----------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    path: Path
    count: int
    prev_seq: int
    prev_hash: str
    last_seq: int
    last_hash: str
    sha256: str
    checkpoint_seq: int | None  # the checkpoint that names this archive, if checked


def _bad(path: Path, reason: str) -> AuditChainBroken:
    return AuditChainBroken(None, f"archive {path.name}: {reason}")


def _archive_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with gzip.open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    raise _bad(path, f"line {number} is not JSON") from None
                if not isinstance(obj, dict):
                    raise _bad(path, f"line {number} is not a JSON object")
                yield number, obj
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _bad(path, f"cannot read it ({exc})") from None


@dataclass(frozen=True)
class _ArchivedRow:
    id: int
    at: dt.datetime
    kind: str
    rollout_id: int | None
    actor: str | None
    body: str
    prev_hash: str
    hash: str


def verify_archive(
    path: Path, *, checkpoints: Sequence[audit.Checkpoint] | None = None
) -> ArchiveResult:
    """Verify an archive file: header, every event's hash and link from the header's
    start, the trailer. With ``checkpoints`` (already signature-checked, e.g. from
    :func:`audit.verify_database`'s checkpoint chain), the file must be the one a
    checkpoint names: same name, SHA-256, start and last hash."""
    lines = _archive_lines(path)
    header = next(lines, None)
    if header is None or header[1].get("format") != ARCHIVE_FORMAT:
        raise _bad(path, f"no {ARCHIVE_FORMAT} header")
    prev_seq, prev_hash = header[1].get("prev_seq"), header[1].get("prev_hash")
    if not isinstance(prev_seq, int) or not isinstance(prev_hash, str):
        raise _bad(path, "the header has no prev_seq/prev_hash")
    start = audit.Checkpoint(prev_hash=prev_hash, seq=prev_seq)
    hash_, what, seq = prev_hash, start.description, prev_seq
    trailer: dict[str, Any] | None = None
    for number, obj in lines:
        if trailer is not None:
            raise _bad(path, f"line {number} comes after the trailer")
        if obj.get("end") is True:
            trailer = obj
            continue
        try:
            row = _ArchivedRow(
                id=int(obj["id"]),
                at=dt.datetime.fromisoformat(str(obj["at"])),
                kind=str(obj["kind"]),
                rollout_id=obj["rollout_id"],
                actor=obj["actor"],
                body=str(obj["body"]),
                prev_hash=str(obj["prev_hash"]),
                hash=str(obj["hash"]),
            )
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"line {number} is not an archived event") from None
        seq += 1
        try:
            audit.check_row(row, prev_hash=hash_, prev_what=what, expected_seq=seq)
        except AuditChainBroken as exc:
            raise _bad(path, str(exc)) from None
        hash_, what = row.hash, f"event {row.id}"
    if trailer is None:
        raise _bad(path, "no trailer: the file is truncated")
    if (trailer.get("count"), trailer.get("last_seq"), trailer.get("last_hash")) != (
        seq - prev_seq,
        seq,
        hash_,
    ):
        raise _bad(path, "the trailer does not match the events")
    digest = _sha256_file(path)
    matched: int | None = None
    if checkpoints is not None:
        named = [c for c in checkpoints if c.archive_name == path.name]
        if not named:
            raise _bad(path, "no checkpoint names this file")
        cp = named[0]
        if cp.archive_sha256 != digest:
            raise _bad(path, "its SHA-256 is not the one its checkpoint recorded")
        if (cp.seq, cp.prev_hash, seq - prev_seq) != (seq, hash_, cp.count):
            raise _bad(path, f"it does not end where checkpoint seq {cp.seq} says")
        matched = cp.seq
    return ArchiveResult(
        path=path,
        count=seq - prev_seq,
        prev_seq=prev_seq,
        prev_hash=prev_hash,
        last_seq=seq,
        last_hash=hash_,
        sha256=digest,
        checkpoint_seq=matched,
    )
