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
The MACs cost no extra round trip: the head row is written anyway.

Appends happen inside the caller's transaction (the caller commits) and are
serialised: a transaction-scoped advisory lock on PostgreSQL; on SQLite the
``BEGIN IMMEDIATE`` write transaction already excludes other writers. The lock is
taken and the head read once per transaction; the transaction's further appends go on
from the head it holds, and the head row is written once, right before it commits
(several events, one head update: the chain is the same as one append per transaction).
Events appended with ``flush=False`` are held as plain rows and written together, in
one INSERT, right before the head (or before anything that must come after them).

Times in bodies are ISO-8601 UTC with microseconds and a ``Z`` suffix
(:func:`format_time`); naive datetimes are refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

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
_PENDING = "audit_pending_head"  # session.info: the head this transaction's appends hold
_LISTENING = "audit_head_listener"  # session.info: the before-commit writer is installed


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


@dataclass
class _Pending:
    """The head as this transaction's appends left it, written once, before commit."""

    txn: SessionTransaction | None  # the root transaction it belongs to
    exists: bool  # the audit_head row exists in the database
    last_event_id: int
    last_hash: str
    count: int
    key_id: str | None = None
    key: bytes | None = None
    last_event: Event | None = None  # the last appended event (its id comes at flush)
    dirty: bool = False
    # Events appended with flush=False, not yet written: one multi-row INSERT (plain
    # Core, no unit of work) writes them, in order, before the head or any other event.
    rows: list[dict[str, Any]] = field(default_factory=list)
    held: list[Event] = field(default_factory=list)  # their transient rows (ids set)


def _pending(session: AsyncSession) -> _Pending | None:
    """This transaction's head, if it holds one (never inside a savepoint)."""
    state = session.info.get(_PENDING)
    sync = session.sync_session
    if not isinstance(state, _Pending) or state.txn is not sync.get_transaction():
        return None
    return state


def _insert_rows(sync: Session) -> None:
    """Write the events held back (``flush=False``) in one statement, ids in their order;
    the last one's id becomes the head's."""
    state = sync.info.get(_PENDING)
    if not isinstance(state, _Pending) or not state.rows:
        return
    rows, held, state.rows, state.held = state.rows, state.held, [], []
    table = cast(sa.Table, Event.__table__)  # typed columns (``at`` is stored as UTC)
    connection = sync.connection()
    if connection.dialect.name == "postgresql":
        # one INSERT … RETURNING; the ids come back in the rows' order
        ids = list(
            connection.execute(
                sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        )
    else:
        # SQLite: one executemany under the write lock, one row after the other, each
        # rowid one more than the last: the ids end at last_insert_rowid()
        connection.execute(sa.insert(table), rows)
        last = connection.execute(sa.select(sa.func.last_insert_rowid())).scalar_one()
        ids = list(range(last - len(rows) + 1, last + 1))
    for event, event_id in zip(held, ids, strict=True):
        event.id = event_id
    state.last_event_id = ids[-1]
    state.last_event = None


def _on_orm_execute(orm_state: ORMExecuteState) -> None:
    """A query in the transaction that reads the events table first sees the held-back
    events (as autoflush would have shown ORM-added ones)."""
    state = orm_state.session.info.get(_PENDING)
    if not isinstance(state, _Pending) or not state.rows or not orm_state.is_select:
        return
    statement = orm_state.statement
    if not isinstance(statement, sa.ClauseElement):
        return
    tables = find_tables(statement, include_crud=True, include_joins=True)
    if any(getattr(t, "name", None) == Event.__tablename__ for t in tables):
        _insert_rows(orm_state.session)


def _write_head(sync: Session) -> None:
    """Write the pending head (writing the events first, so their ids exist)."""
    state = sync.info.get(_PENDING)
    if not isinstance(state, _Pending) or not state.dirty:
        return
    if state.txn is not sync.get_transaction():
        return  # left over from a transaction that ended
    sync.flush()
    if state.rows:
        _insert_rows(sync)
    elif state.last_event is not None:
        assert state.last_event.id is not None
        state.last_event_id = state.last_event.id
    values = {
        "last_event_id": state.last_event_id,
        "last_hash": state.last_hash,
        "count": state.count,
        "key_id": state.key_id,
        "mac": None
        if state.key is None
        else head_mac(
            state.key,
            count=state.count,
            last_event_id=state.last_event_id,
            last_hash=state.last_hash,
        ),
    }
    if state.exists:
        sync.execute(
            sa.update(AuditHead)
            .where(AuditHead.id == HEAD_ID)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    else:
        sync.execute(sa.insert(AuditHead).values(id=HEAD_ID, **values))
        state.exists = True
    state.dirty = False


def _before_commit(sync: Session) -> None:
    _write_head(sync)


async def read_head(session: AsyncSession) -> AuditHead | None:
    """The head row as the caller's transaction sees it (its own appends included)."""
    if (state := _pending(session)) is not None and state.dirty:
        await session.run_sync(_write_head)
    result = await session.scalars(
        sa.select(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .execution_options(populate_existing=True)
    )
    return result.one_or_none()


async def _begin_appending(session: AsyncSession) -> _Pending:
    """Take the lock and read the head, once per transaction; later appends in the same
    transaction go on from the head held here (the lock is held until it ends)."""
    if (state := _pending(session)) is not None:
        return state
    await lock(session)
    found = (
        await session.execute(
            sa.select(AuditHead.last_event_id, AuditHead.last_hash, AuditHead.count).where(
                AuditHead.id == HEAD_ID
            )
        )
    ).one_or_none()
    last_event_id, last_hash, count = found if found is not None else (0, GENESIS_HASH, 0)
    sync = session.sync_session
    state = _Pending(
        txn=sync.get_transaction(),
        exists=found is not None,
        last_event_id=last_event_id,
        last_hash=last_hash,
        count=count,
    )
    if not session.info.get(_LISTENING):
        sa.event.listen(sync, "before_commit", _before_commit)
        sa.event.listen(sync, "do_orm_execute", _on_orm_execute)
        session.info[_LISTENING] = True
    if sync.in_nested_transaction():
        # A savepoint could roll back what is held here: append eagerly (the head is
        # written with each event, and read again by the next append).
        state.txn = None
    session.info[_PENDING] = state
    return state


async def append(
    session: AsyncSession,
    *,
    kind: str,
    data: Mapping[str, Any],
    at: dt.datetime,
    actor: str | None = None,
    rollout_id: int | None = None,
    flush: bool = True,
) -> Event:
    """Append one event in the caller's transaction (never commits). Returns the flushed
    row; with ``flush=False`` the row is held back and written with the transaction's
    other held-back events in one plain INSERT, right before the head (or before the
    next flushed append, or a query of the events table in the transaction), and the
    returned row is a transient copy, its id set once it is written.

    The first append of a transaction takes the lock and reads the head; the others go
    on from the head held in the transaction, and the head row is written once, right
    before commit (or when :func:`read_head` asks for it).

    Raises ConfigError when the session's database requires a key it was not given
    (:class:`KeyRequired`): the caller's transaction then rolls back with nothing written."""
    required = session.info.get(SESSION_KEYS)
    if isinstance(required, KeyRequired):
        raise ConfigError([required.problem])
    state = await _begin_appending(session)
    seq = state.count + 1
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
    digest = (
        chain_hash(state.last_hash, body) if key is None else event_mac(key, state.last_hash, body)
    )
    row = {
        "at": at,
        "kind": kind,
        "rollout_id": rollout_id,
        "actor": actor,
        "body": body,
        "prev_hash": state.last_hash,
        "hash": digest,
        "key_id": kid,
    }
    event = Event(**row)
    if flush or state.txn is None:
        if state.rows:  # events held back come first (ids in chain order)
            await session.run_sync(_insert_rows)
        session.add(event)
        await session.flush()
        state.last_event = event
    else:
        state.rows.append(row)  # written with the others, in one statement
        state.held.append(event)
    state.last_hash, state.count, state.key_id, state.key = digest, seq, kid, key
    state.dirty = True
    if state.txn is None:  # inside a savepoint: as before, the head with each event
        state.txn = session.sync_session.get_transaction()
        await session.run_sync(_write_head)
        session.info.pop(_PENDING, None)
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
