"""Verifying the chain: every row's hash, link, body and mirrored columns, and the head.

A pruned log verifies from its newest signed checkpoint, after every checkpoint was
checked (:func:`verify_database`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.audit._chain import (
    BODY_KEYS,
    VERIFY_CHUNK,
    canonical_json,
    chain_hash,
    format_time,
    read_head,
)
from workflows.audit._checkpoints import GENESIS, Checkpoint, check_checkpoints, checkpoint_rows
from workflows.db import Database
from workflows.errors import AuditChainBroken, ConfigError
from workflows.models import Event


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

    head = await read_head(session)
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
