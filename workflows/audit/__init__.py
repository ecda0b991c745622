"""The hash-chained audit log (the ``events`` table).

Every row stores its canonical JSON body as text and
``hash = sha256(prev_hash + body)``, where ``prev_hash`` is the hash of the row before
it (``GENESIS_HASH`` for the first). The body is::

    {"actor": ..., "at": "2026-03-29T01:30:00.000000Z", "data": {...},
     "kind": "...", "rollout_id": ..., "seq": 1}

``seq`` counts events from 1 without gaps. The columns ``kind``, ``at``, ``actor`` and
``rollout_id`` mirror the body so they can be queried; :func:`verify` checks that they
agree with it. The single ``audit_head`` row (id 1) holds the last event's id and hash
and the number of events ever appended (= the last ``seq``), so a deleted tail is caught.

Appends happen inside the caller's transaction (the caller commits) and are
serialised: a transaction-scoped advisory lock on PostgreSQL; on SQLite the
``BEGIN IMMEDIATE`` write transaction already excludes other writers.

Times in bodies are ISO-8601 UTC with microseconds and a ``Z`` suffix
(:func:`format_time`); naive datetimes are refused.

Retention (``audit prune``, :mod:`workflows.audit.retention`) removes a prefix of the chain and
leaves a row in ``audit_checkpoints`` signed with HMAC-SHA256: :func:`verify_database`
checks every checkpoint (:func:`check_checkpoints`) and walks the events from the newest
one. Reports ask :func:`latest_checkpoint` / :func:`period_pruned`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.db import Database
from workflows.errors import AuditChainBroken, ConfigError
from workflows.models import AuditCheckpoint, AuditHead, Event

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# pg_advisory_xact_lock key for audit appends: b"pgaudit\x00" as a signed 64-bit integer.
AUDIT_LOCK_KEY = int.from_bytes(b"pgaudit\x00", "big", signed=True)
VERIFY_CHUNK = 1000
BODY_KEYS = frozenset({"actor", "at", "data", "kind", "rollout_id", "seq"})


def format_time(value: dt.datetime) -> str:
    """An aware datetime as ISO-8601 UTC with microseconds and ``Z``: the one form in bodies."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime in an audit event; use an aware one")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in an audit event")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text, datetimes as UTC ``…Z``.

    NaN and infinities are refused (they are not JSON).
    """
    return json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


async def lock(session: AsyncSession) -> None:
    """Serialise with every other append (and prune) until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))


async def _read_head(session: AsyncSession) -> AuditHead | None:
    result = await session.scalars(
        sa.select(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .execution_options(populate_existing=True)
    )
    return result.one_or_none()


async def append(
    session: AsyncSession,
    *,
    kind: str,
    data: Mapping[str, Any],
    at: dt.datetime,
    actor: str | None = None,
    rollout_id: int | None = None,
) -> Event:
    """Append one event in the caller's transaction (never commits). Returns the flushed row."""
    await lock(session)
    head = await _read_head(session)
    if head is None:
        head = AuditHead(id=HEAD_ID, last_event_id=0, last_hash=GENESIS_HASH, count=0)
        session.add(head)
    seq = head.count + 1
    at_text = format_time(at)
    body = canonical_json(
        {
            "actor": actor,
            "at": at_text,
            "data": dict(data),
            "kind": kind,
            "rollout_id": rollout_id,
            "seq": seq,
        }
    )
    event = Event(
        at=at,
        kind=kind,
        rollout_id=rollout_id,
        actor=actor,
        body=body,
        prev_hash=head.last_hash,
        hash=chain_hash(head.last_hash, body),
    )
    session.add(event)
    await session.flush()
    head.last_event_id = event.id
    head.last_hash = event.hash
    head.count = seq
    await session.flush()
    return event


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """Where a verified slice starts: the hash, seq and id of the event just before it.

    ``Checkpoint()`` is the start of the chain. ``audit prune`` stores one (a row of
    ``audit_checkpoints``, see :func:`latest_checkpoint`) for the archived prefix so the
    remaining events still verify alone; the fields after ``event_id`` are set only on
    such a stored checkpoint.
    """

    prev_hash: str = GENESIS_HASH  # the hash of the last event before the slice
    seq: int = 0  # that event's seq (0: the genesis)
    event_id: int = 0  # that event's id (0: none)
    at: dt.datetime | None = None  # that event's time
    before: dt.datetime | None = None  # the prune removed the events before this time
    count: int = 0  # events removed by the prune that made this checkpoint
    archive_name: str | None = None  # the file they were archived to
    archive_sha256: str | None = None
    created_at: dt.datetime | None = None
    created_by: str | None = None

    @property
    def description(self) -> str:
        if self.seq == 0 and self.prev_hash == GENESIS_HASH:
            return "the genesis hash"
        return f"the checkpoint (seq {self.seq})"


GENESIS = Checkpoint()


@dataclass(frozen=True)
class VerifyResult:
    count: int  # event rows verified
    last_seq: int  # seq of the last event (== the head's count)
    last_hash: str
    last_event_id: int | None
    checkpoint: Checkpoint | None = None  # the signed prune checkpoint it started from


def _broken(event_id: int, reason: str) -> AuditChainBroken:
    return AuditChainBroken(event_id, f"event {event_id}: {reason}")


def check_row(row: Any, *, prev_hash: str, prev_what: str, expected_seq: int) -> None:
    """Check one events row (id, at, kind, rollout_id, actor, body, prev_hash, hash)."""
    event_id: int = row.id
    body_text: str = row.body
    if chain_hash(row.prev_hash, body_text) != row.hash:
        raise _broken(event_id, "hash does not match its contents")
    if row.prev_hash != prev_hash:
        raise _broken(event_id, f"previous hash does not match {prev_what}")
    try:
        body = json.loads(body_text)
    except ValueError:
        raise _broken(event_id, "body is not valid JSON") from None
    if not isinstance(body, dict) or set(body) != BODY_KEYS:
        raise _broken(event_id, f"body must have exactly the keys {sorted(BODY_KEYS)}")
    if canonical_json(body) != body_text:
        raise _broken(event_id, "body is not in canonical form")
    if body["seq"] != expected_seq:
        raise _broken(event_id, f"sequence number is {body['seq']}, expected {expected_seq}")
    at: dt.datetime = row.at
    mirrored = {
        "kind": (row.kind, body["kind"]),
        "actor": (row.actor, body["actor"]),
        "rollout_id": (row.rollout_id, body["rollout_id"]),
        "at": (format_time(at), body["at"]),
    }
    for column, (stored, in_body) in mirrored.items():
        if stored != in_body:
            raise _broken(
                event_id, f"column {column} ({stored!r}) does not match its body ({in_body!r})"
            )


async def verify(
    session: AsyncSession,
    *,
    start: Checkpoint = GENESIS,
    chunk_size: int = VERIFY_CHUNK,
) -> VerifyResult:
    """Walk the whole chain in id order; raise AuditChainBroken at the first problem.

    Rows are read in chunks by keyset pagination (constant memory). For a consistent
    view while other transactions append, run it in a snapshot (``verify_database``
    does: REPEATABLE READ on PostgreSQL; SQLite's WAL read transactions are snapshots).
    ``start`` lets a pruned chain (or a slice) verify from a checkpoint.
    """
    cols = (
        Event.id,
        Event.at,
        Event.kind,
        Event.rollout_id,
        Event.actor,
        Event.body,
        Event.prev_hash,
        Event.hash,
    )
    prev_hash, prev_what, seq = start.prev_hash, start.description, start.seq
    last_id: int | None = None
    count = 0
    while True:
        query = sa.select(*cols).order_by(Event.id).limit(chunk_size)
        if last_id is not None:
            query = query.where(Event.id > last_id)
        rows = (await session.execute(query)).all()
        for row in rows:
            seq += 1
            check_row(row, prev_hash=prev_hash, prev_what=prev_what, expected_seq=seq)
            prev_hash, prev_what, last_id = row.hash, f"event {row.id}", row.id
            count += 1
        if len(rows) < chunk_size:
            break

    head = await _read_head(session)
    if head is None:
        if count:
            raise AuditChainBroken(last_id, f"head is missing, chain has {seq} events")
        return VerifyResult(count=0, last_seq=seq, last_hash=prev_hash, last_event_id=None)
    if head.count != seq:
        raise AuditChainBroken(
            head.last_event_id, f"head says {head.count} events, chain has {seq}"
        )
    ends_at = last_id if last_id is not None else start.event_id
    if head.last_event_id != ends_at or head.last_hash != prev_hash:
        raise AuditChainBroken(
            head.last_event_id,
            f"head names event {head.last_event_id}, chain ends at "
            + (f"event {last_id}" if last_id is not None else "the checkpoint"),
        )
    return VerifyResult(count=count, last_seq=seq, last_hash=prev_hash, last_event_id=last_id)


async def verify_database(
    db: Database, *, start: Checkpoint | None = None, key: bytes | None = None
) -> VerifyResult:
    """Verify in one read-only snapshot of the database.

    Without ``start``, a pruned log verifies from its newest checkpoint, after every
    checkpoint's signature (``key``) and their links to each other were checked; a
    pruned log cannot be verified without the key (ConfigError).
    """
    async with db.read_sessions() as session:
        try:
            if db.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            if start is not None:
                return await verify(session, start=start)
            rows = await checkpoint_rows(session)
            if not rows:
                return await verify(session)
            if key is None:
                raise ConfigError(
                    [
                        f"PATCHGATE_AUDIT_KEY: required to verify this audit log: it was pruned "
                        f"and its {len(rows)} checkpoint(s) are signed with that key"
                    ]
                )
            checkpoint = check_checkpoints(rows, key=key)
            result = await verify(session, start=checkpoint)
            return dataclasses.replace(result, checkpoint=checkpoint)
        finally:
            await session.rollback()


# --- prune checkpoints ------------------------------------------------------------------

CHECKPOINT_FORMAT = "patchgate-audit-checkpoint/1"
_SIGNED_FIELDS = (
    "seq",
    "event_id",
    "hash",
    "event_at",
    "prev_seq",
    "prev_hash",
    "count",
    "before",
    "archive_name",
    "archive_sha256",
    "created_at",
    "created_by",
    "key_id",
)


def key_id(key: bytes) -> str:
    """A short, non-secret name for a signing key (so a key change is told apart from
    tampering)."""
    return hmac.new(key, b"patchgate audit key id", hashlib.sha256).hexdigest()[:16]


def checkpoint_payload(row: AuditCheckpoint) -> str:
    """The canonical JSON a checkpoint's signature covers (every column but id/signature)."""
    fields: dict[str, Any] = {name: getattr(row, name) for name in _SIGNED_FIELDS}
    fields["format"] = CHECKPOINT_FORMAT
    return canonical_json(fields)


def sign_checkpoint(row: AuditCheckpoint, *, key: bytes) -> str:
    """HMAC-SHA256 of :func:`checkpoint_payload`, hex."""
    return hmac.new(key, checkpoint_payload(row).encode("utf-8"), hashlib.sha256).hexdigest()


def _to_checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        prev_hash=row.hash,
        seq=row.seq,
        event_id=row.event_id,
        at=row.event_at,
        before=row.before,
        count=row.count,
        archive_name=row.archive_name,
        archive_sha256=row.archive_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
    )


async def checkpoint_rows(session: AsyncSession) -> list[AuditCheckpoint]:
    result = await session.scalars(
        sa.select(AuditCheckpoint)
        .order_by(AuditCheckpoint.seq)
        .execution_options(populate_existing=True)
    )
    return list(result)


def check_checkpoints(rows: Sequence[AuditCheckpoint], *, key: bytes) -> Checkpoint:
    """Check every checkpoint's signature and that each starts where the one before ended
    (the first at the genesis); return the newest, from which the events verify."""
    prev_seq, prev_hash = 0, GENESIS_HASH
    kid = key_id(key)
    for row in rows:
        where = f"checkpoint seq {row.seq}"
        if row.key_id != kid:
            raise AuditChainBroken(
                None,
                f"{where} was signed with another key (key id {row.key_id}, "
                f"PATCHGATE_AUDIT_KEY is {kid})",
            )
        if not hmac.compare_digest(sign_checkpoint(row, key=key), row.signature):
            raise AuditChainBroken(None, f"{where}: signature does not verify (tampered)")
        if (row.prev_seq, row.prev_hash) != (prev_seq, prev_hash):
            raise AuditChainBroken(
                None,
                f"{where} starts after seq {row.prev_seq}, expected after seq {prev_seq} "
                "(a checkpoint is missing)",
            )
        if row.count != row.seq - row.prev_seq:
            raise AuditChainBroken(None, f"{where}: count {row.count} does not match its seqs")
        prev_seq, prev_hash = row.seq, row.hash
    return _to_checkpoint(rows[-1]) if rows else GENESIS


async def checkpoints(session: AsyncSession, *, key: bytes) -> list[Checkpoint]:
    """Every prune checkpoint, oldest first, after :func:`check_checkpoints`."""
    rows = await checkpoint_rows(session)
    check_checkpoints(rows, key=key)
    return [_to_checkpoint(row) for row in rows]


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    """The newest prune checkpoint (signature not checked: :func:`verify_database` does),
    or None if the log was never pruned."""
    row = (
        await session.scalars(
            sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)
        )
    ).one_or_none()
    return None if row is None else _to_checkpoint(row)


async def period_pruned(session: AsyncSession, *, since: dt.datetime) -> Checkpoint | None:
    """For a report over a period starting at ``since``: the newest checkpoint if events
    at or after ``since`` may have been pruned (its cut ``before`` is later than
    ``since``), else None. Pruned events are in the checkpoints' archive files; the events
    left start from ``checkpoint.prev_hash`` (seq ``checkpoint.seq``)."""
    checkpoint = await latest_checkpoint(session)
    if checkpoint is None or checkpoint.before is None or checkpoint.before <= since:
        return None
    return checkpoint
