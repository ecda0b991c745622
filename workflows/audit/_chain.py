"""The hash-chained audit log (the ``events`` table).

Every row stores its canonical JSON body as text and
``hash = HMAC-SHA256(key, prev_hash + body)`` with ``key_id`` naming the key (see
``_keys``), where ``prev_hash`` is the hash of the row before it (``GENESIS_HASH`` for
the first). A session without audit keys (``session.info["audit_keys"]``, set by
:func:`workflows.db.create_database` from the keys its URLs carry) appends unkeyed rows,
``hash = sha256(prev_hash + body)`` and ``key_id`` NULL, as before keys existed;
``audit verify`` says so. The body is::

    {"actor": ..., "at": "2026-03-29T01:30:00.000000Z", "data": {...},
     "kind": "...", "rollout_id": ..., "seq": 1}

``seq`` counts events from 1 without gaps. The columns ``kind``, ``at``, ``actor`` and
``rollout_id`` mirror the body so they can be queried; :func:`verify` checks that they
agree with it. The single ``audit_head`` row (id 1) holds the last event's id and hash
and the number of events ever appended (= the last ``seq``), so a deleted tail is caught,
and (keyed) its own MAC over those, so a head moved back to an earlier event is caught.
The MACs cost no extra round trip: the head row was already updated with each append.

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
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.audit._keys import AuditKeys, KeyRequired, event_mac, head_mac, key_id
from workflows.errors import ConfigError
from workflows.models import AuditHead, Base, Event

RowT = TypeVar("RowT", bound=Base)

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# pg_advisory_xact_lock key for audit appends: b"pgaudit\x00" as a signed 64-bit integer.
AUDIT_LOCK_KEY = int.from_bytes(b"pgaudit\x00", "big", signed=True)
VERIFY_CHUNK = 1000
BODY_KEYS = frozenset({"actor", "at", "data", "kind", "rollout_id", "seq"})
SESSION_KEYS = "audit_keys"  # the session.info entry holding the AuditKeys


def session_keys(session: AsyncSession) -> AuditKeys | None:
    keys = session.info.get(SESSION_KEYS)
    if isinstance(keys, KeyRequired):
        return None  # reading and verifying go on unkeyed; append refuses
    if keys is not None and not isinstance(keys, AuditKeys):
        raise TypeError(f"session.info[{SESSION_KEYS!r}] is not AuditKeys")
    return keys


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


async def read_head(session: AsyncSession) -> AuditHead | None:
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
    """Append one event in the caller's transaction (never commits). Returns the flushed row.

    Raises ConfigError when the session's database requires a key it was not given
    (:class:`KeyRequired`): the caller's transaction then rolls back with nothing written."""
    required = session.info.get(SESSION_KEYS)
    if isinstance(required, KeyRequired):
        raise ConfigError([required.problem])
    await lock(session)
    head = await read_head(session)
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
    keys = session_keys(session)
    key = None if keys is None else keys.current()
    kid = None if key is None else key_id(key)
    event = Event(
        at=at,
        kind=kind,
        rollout_id=rollout_id,
        actor=actor,
        body=body,
        prev_hash=head.last_hash,
        hash=chain_hash(head.last_hash, body)
        if key is None
        else event_mac(key, head.last_hash, body),
        key_id=kid,
    )
    session.add(event)
    await session.flush()
    head.last_event_id = event.id
    head.last_hash = event.hash
    head.count = seq
    head.key_id = kid
    head.mac = (
        None
        if key is None
        else head_mac(key, count=seq, last_event_id=event.id, last_hash=event.hash)
    )
    await session.flush()
    return event


async def add_audited(
    session: AsyncSession,
    row: RowT,
    *,
    kind: str,
    data: Callable[[RowT], Mapping[str, Any]],
    at: dt.datetime,
    actor: str | None = None,
    rollout_id: int | None = None,
) -> RowT:
    """Add ``row`` and append the event that records it, in the caller's transaction.

    The row is flushed first so its id exists: ``data`` is called with the flushed row
    and builds the event's data (which names that id).
    """
    session.add(row)
    await session.flush()
    await append(session, kind=kind, data=data(row), at=at, actor=actor, rollout_id=rollout_id)
    return row
