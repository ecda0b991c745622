"""Prune checkpoints: where a verified slice of the chain starts, and the signed rows that
``audit prune`` leaves in ``audit_checkpoints`` (HMAC-SHA256, so a pruned log cannot be
rewritten from its newest checkpoint on without the key)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.audit._chain import GENESIS_HASH, canonical_json
from workflows.audit._keys import AuditKeys
from workflows.audit._keys import key_id as key_id
from workflows.errors import AuditChainBroken
from workflows.models import AuditCheckpoint


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


def checkpoint_payload(row: AuditCheckpoint) -> str:
    """The canonical JSON a checkpoint's signature covers (every column but id/signature)."""
    fields: dict[str, Any] = {name: getattr(row, name) for name in _SIGNED_FIELDS}
    fields["format"] = CHECKPOINT_FORMAT
    return canonical_json(fields)


def sign_checkpoint(row: AuditCheckpoint, *, key: bytes) -> str:
    """HMAC-SHA256 of :func:`checkpoint_payload`, hex."""
    return hmac.new(key, checkpoint_payload(row).encode("utf-8"), hashlib.sha256).hexdigest()


def to_checkpoint(row: AuditCheckpoint) -> Checkpoint:
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


def check_checkpoints(
    rows: Sequence[AuditCheckpoint], *, key: bytes | None = None, keys: AuditKeys | None = None
) -> Checkpoint:
    """Check every checkpoint's signature (with ``key``, or the key of ``keys`` its key id
    names: retired keys verify what they signed) and that each starts where the one before
    ended (the first at the genesis); return the newest, from which the events verify."""
    if keys is None:
        if key is None:
            raise TypeError("check_checkpoints needs key= or keys=")
        keys = AuditKeys(key=key)
    prev_seq, prev_hash = 0, GENESIS_HASH
    for row in rows:
        where = f"checkpoint seq {row.seq}"
        signer = keys.lookup(row.key_id)
        if signer is None:
            raise AuditChainBroken(
                None,
                f"{where} was signed with another key (key id {row.key_id}; known: "
                f"{', '.join(keys.known_ids()) or 'none'}: PATCHGATE_AUDIT_KEY, "
                "PATCHGATE_AUDIT_OLD_KEYS)",
            )
        if not hmac.compare_digest(sign_checkpoint(row, key=signer), row.signature):
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
    return to_checkpoint(rows[-1]) if rows else GENESIS


async def checkpoints(
    session: AsyncSession, *, key: bytes | None = None, keys: AuditKeys | None = None
) -> list[Checkpoint]:
    """Every prune checkpoint, oldest first, after :func:`check_checkpoints`."""
    rows = await checkpoint_rows(session)
    check_checkpoints(rows, key=key, keys=keys)
    return [to_checkpoint(row) for row in rows]


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    """The newest prune checkpoint (signature not checked: :func:`verify_database` does),
    or None if the log was never pruned."""
    row = (
        await session.scalars(
            sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)
        )
    ).one_or_none()
    return None if row is None else to_checkpoint(row)


async def period_pruned(session: AsyncSession, *, since: dt.datetime) -> Checkpoint | None:
    """For a report over a period starting at ``since``: the newest checkpoint if events
    at or after ``since`` may have been pruned (its cut ``before`` is later than
    ``since``), else None. Pruned events are in the checkpoints' archive files; the events
    left start from ``checkpoint.prev_hash`` (seq ``checkpoint.seq``)."""
    checkpoint = await latest_checkpoint(session)
    if checkpoint is None or checkpoint.before is None or checkpoint.before <= since:
        return None
    return checkpoint
