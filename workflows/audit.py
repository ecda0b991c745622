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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.db import Database
from workflows.errors import AuditChainBroken
from workflows.models import AuditHead, Event

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


async def _lock(session: AsyncSession) -> None:
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
    await _lock(session)
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
    """Where a verified slice starts: the hash and seq of the event just before it.

    ``Checkpoint()`` is the start of the chain. ``audit prune`` keeps one of these for
    the archived prefix so the remaining events still verify alone.
    """

    prev_hash: str = GENESIS_HASH
    seq: int = 0

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


def _broken(event_id: int, reason: str) -> AuditChainBroken:
    return AuditChainBroken(event_id, f"event {event_id}: {reason}")


def _check_row(row: Any, *, prev_hash: str, prev_what: str, expected_seq: int) -> None:
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
            _check_row(row, prev_hash=prev_hash, prev_what=prev_what, expected_seq=seq)
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
    if head.last_event_id != (last_id or 0) or head.last_hash != prev_hash:
        raise AuditChainBroken(
            head.last_event_id,
            f"head names event {head.last_event_id}, chain ends at "
            + (f"event {last_id}" if last_id is not None else "the checkpoint"),
        )
    return VerifyResult(count=count, last_seq=seq, last_hash=prev_hash, last_event_id=last_id)


async def verify_database(db: Database, *, start: Checkpoint = GENESIS) -> VerifyResult:
    """Verify in one read-only snapshot of the database."""
    async with db.read_sessions() as session:
        try:
            if db.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return await verify(session, start=start)
        finally:
            await session.rollback()
