"""Verifying the chain: every row's MAC (or unkeyed hash), link, body and mirrored
columns, and the head (its count, where it points, its MAC).

What a database writer without the audit key cannot do unnoticed: rewrite an event and
recompute every later hash (the MAC does not verify), truncate the tail and move the head
back (the head's MAC does not verify), leave the tail unkeyed after keyed events, wipe the
events (the head's count, or rollouts left with no events). A wipe of every audit row
*and* every rollout is caught by the witnessed heads (``_witness``).

A pruned log verifies from its newest signed checkpoint, after every checkpoint was
checked (:func:`verify_database`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
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
    session_keys,
)
from workflows.audit._checkpoints import GENESIS, Checkpoint, check_checkpoints, checkpoint_rows
from workflows.audit._keys import AuditKeys, event_mac, head_mac
from workflows.db import Database
from workflows.errors import AuditChainBroken, ConfigError
from workflows.models import Event, Rollout


@dataclass(frozen=True)
class VerifyResult:
    count: int  # event rows verified
    last_seq: int  # seq of the last event (== the head's count)
    last_hash: str
    last_event_id: int | None
    checkpoint: Checkpoint | None = None  # the signed prune checkpoint it started from
    unkeyed: int = 0  # events verified with the unkeyed SHA-256 (written without a key)
    key_ids: tuple[str, ...] = ()  # the keys the keyed events were MAC'd with
    seen: dict[int, str] = dataclasses.field(default_factory=dict)  # asked seq -> hash


def _lookup(keys: AuditKeys | None, kid: str, what: str, event_id: int | None) -> bytes:
    if keys is None:
        raise ConfigError(
            [
                f"PATCHGATE_AUDIT_KEY: required to verify this audit log: {what} is MAC'd "
                f"with audit key id {kid}"
            ]
        )
    key = keys.lookup(kid)
    if key is None:
        raise AuditChainBroken(
            event_id,
            f"{what} is MAC'd with audit key id {kid}, which is neither the current key "
            f"nor in PATCHGATE_AUDIT_OLD_KEYS (known: {', '.join(keys.known_ids()) or 'none'})",
        )
    return key


def _broken(event_id: int, reason: str) -> AuditChainBroken:
    return AuditChainBroken(event_id, f"event {event_id}: {reason}")


def check_row(
    row: Any,
    *,
    prev_hash: str,
    prev_what: str,
    expected_seq: int,
    keys: AuditKeys | None = None,
    keyed_before: bool = False,
) -> bool:
    """Check one events row (id, at, kind, rollout_id, actor, body, prev_hash, hash,
    key_id); returns whether this row or an earlier one (``keyed_before``) was keyed."""
    event_id: int = row.id
    body_text: str = row.body
    kid: str | None = getattr(row, "key_id", None)
    if kid is None:
        # An unkeyed row between keyed ones is still anchored: the next keyed row's MAC
        # covers its hash. An unkeyed tail is caught at the head (see :func:`verify`).
        if chain_hash(row.prev_hash, body_text) != row.hash:
            raise _broken(event_id, "hash does not match its contents")
    else:
        key = _lookup(keys, kid, f"event {event_id}", event_id)
        if not hmac.compare_digest(event_mac(key, row.prev_hash, body_text), row.hash):
            raise _broken(
                event_id,
                "MAC does not verify: the event was rewritten (or its hash recomputed) "
                "without the audit key",
            )
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
    return keyed_before or kid is not None


async def verify(
    session: AsyncSession,
    *,
    start: Checkpoint = GENESIS,
    chunk_size: int = VERIFY_CHUNK,
    keys: AuditKeys | None = None,
    want_seqs: frozenset[int] = frozenset(),
) -> VerifyResult:
    """Walk the whole chain in id order; raise AuditChainBroken at the first problem.

    Rows are read in chunks by keyset pagination (constant memory). For a consistent
    view while other transactions append, run it in a snapshot (``verify_database``
    does: REPEATABLE READ on PostgreSQL; SQLite's WAL read transactions are snapshots).
    ``start`` lets a pruned chain (or a slice) verify from a checkpoint. ``keys`` verify
    the MACs (default: the session's keys); ``want_seqs``: the hashes of these seqs are
    returned in ``seen`` (the witnessed heads are checked against them).
    """
    if keys is None:
        keys = session_keys(session)
    cols = (
        Event.id,
        Event.at,
        Event.kind,
        Event.rollout_id,
        Event.actor,
        Event.body,
        Event.prev_hash,
        Event.hash,
        Event.key_id,
    )
    prev_hash, prev_what, seq = start.prev_hash, start.description, start.seq
    last_id: int | None = None
    count = unkeyed = 0
    keyed = False
    key_ids: set[str] = set()
    seen: dict[int, str] = {}
    while True:
        query = sa.select(*cols).order_by(Event.id).limit(chunk_size)
        if last_id is not None:
            query = query.where(Event.id > last_id)
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
            if row.key_id is not None:
                key_ids.add(row.key_id)
            else:
                unkeyed += 1
            if seq in want_seqs:
                seen[seq] = row.hash
            prev_hash, prev_what, last_id = row.hash, f"event {row.id}", row.id
            count += 1
        if len(rows) < chunk_size:
            break

    head = await read_head(session)
    if head is None:
        if count:
            raise AuditChainBroken(last_id, f"head is missing, chain has {seq} events")
        rollouts = await session.scalar(sa.select(sa.func.count()).select_from(Rollout))
        if rollouts:
            raise AuditChainBroken(
                None,
                f"the audit log is empty (no events, no head) but {rollouts} rollout(s) "
                "exist: its events were wiped",
            )
        return VerifyResult(count=0, last_seq=seq, last_hash=prev_hash, last_event_id=None)
    if head.count != seq:
        if count == 0 and seq == start.seq:
            what = "every event after it was wiped" if start.seq else "its events were wiped"
            raise AuditChainBroken(
                head.last_event_id,
                f"head says {head.count} events, the chain has none after "
                f"{start.description}: {what}",
            )
        if head.count > seq:
            raise AuditChainBroken(
                head.last_event_id,
                f"head says {head.count} events, chain has {seq}: the events after seq "
                f"{seq} were deleted (tail truncated)",
            )
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
    if head.key_id is not None:
        key = _lookup(keys, head.key_id, "the head", head.last_event_id)
        expected = head_mac(
            key, count=head.count, last_event_id=head.last_event_id, last_hash=head.last_hash
        )
        if not hmac.compare_digest(expected, head.mac or ""):
            raise AuditChainBroken(
                head.last_event_id,
                f"the head's MAC does not verify: the head (seq {head.count}, event "
                f"{head.last_event_id}) was moved without the audit key (tail truncated and "
                "head moved back?)",
            )
    elif keyed:
        raise AuditChainBroken(
            head.last_event_id,
            "the head carries no MAC although the chain is keyed: the tail was written or "
            "rewritten without the audit key (tampering, or a process appending without "
            "PATCHGATE_AUDIT_KEY)",
        )
    elif head.count and keys is not None and keys.configured() is not None:
        raise AuditChainBroken(
            head.last_event_id,
            "the head carries no MAC although an audit key is configured: the log was "
            "rewritten without the key (or nothing was appended since the key was set: run "
            "`patchgate audit rotate-key`)",
        )
    return VerifyResult(
        count=count,
        last_seq=seq,
        last_hash=prev_hash,
        last_event_id=last_id,
        unkeyed=unkeyed,
        key_ids=tuple(sorted(key_ids)),
        seen=seen,
    )


async def verify_database(
    db: Database,
    *,
    start: Checkpoint | None = None,
    key: bytes | None = None,
    keys: AuditKeys | None = None,
    want_seqs: frozenset[int] = frozenset(),
) -> VerifyResult:
    """Verify in one read-only snapshot of the database.

    Without ``start``, a pruned log verifies from its newest checkpoint, after every
    checkpoint's signature (``key``) and their links to each other were checked; a
    pruned log cannot be verified without the key (ConfigError).
    """
    if keys is None and key is not None:
        keys = AuditKeys(key=key)
    async with db.read_sessions() as session:
        if keys is None:
            keys = session_keys(session)
        try:
            if db.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            if start is not None:
                return await verify(session, start=start, keys=keys, want_seqs=want_seqs)
            rows = await checkpoint_rows(session)
            if not rows:
                return await verify(session, keys=keys, want_seqs=want_seqs)
            if keys is None:
                raise ConfigError(
                    [
                        f"PATCHGATE_AUDIT_KEY: required to verify this audit log: it was pruned "
                        f"and its {len(rows)} checkpoint(s) are signed with that key"
                    ]
                )
            checkpoint = check_checkpoints(rows, keys=keys)
            result = await verify(session, start=checkpoint, keys=keys, want_seqs=want_seqs)
            return dataclasses.replace(result, checkpoint=checkpoint)
        finally:
            await session.rollback()
