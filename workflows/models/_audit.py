"""The hash-chained audit log, its head, and the signed checkpoints left by pruning."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base


class Event(Base):
    """The append-only, hash-chained audit log."""

    __tablename__ = "events"
    # reports find a period's slice of the chain by time (an index-only range scan)
    __table_args__ = (sa.Index("ix_events_at_id", "at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(sa.String(64), index=True)
    rollout_id: Mapped[int | None] = mapped_column(index=True)
    actor: Mapped[str | None] = mapped_column(sa.String(64))
    body: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))  # the MAC when key_id is set
    key_id: Mapped[str | None] = mapped_column(sa.String(16))  # None: unkeyed SHA-256


class AuditHead(Base):
    """The chain's head, updated with every append, so a deleted tail is caught too."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(sa.String(64))
    count: Mapped[int] = mapped_column(default=0)
    # HMAC of (count, last_event_id, last_hash) with the key named by key_id (None when
    # the last append was unkeyed): a head moved back to an earlier event is caught.
    key_id: Mapped[str | None] = mapped_column(sa.String(16))
    mac: Mapped[str | None] = mapped_column(sa.String(64))


class AuditCheckpoint(Base):
    """What ``audit prune`` removed: the last removed event's seq, id and hash, signed.

    The remaining chain verifies from the newest checkpoint; each checkpoint's archive
    verifies from the one before it (or the genesis hash). ``signature`` is an
    HMAC-SHA256 (``PATCHGATE_AUDIT_KEY``) over the canonical JSON of the other fields
    (see ``workflows.audit.checkpoint_payload``).
    """

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)  # the last removed event's seq
    event_id: Mapped[int]  # the last removed event's id
    hash: Mapped[str] = mapped_column(sa.String(64))  # the last removed event's hash
    event_at: Mapped[dt.datetime]  # the last removed event's time
    prev_seq: Mapped[int]  # where this prune's archive starts (0: the genesis)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    count: Mapped[int]  # events removed by this prune
    before: Mapped[dt.datetime]  # the prune removed the events before this time
    archive_name: Mapped[str] = mapped_column(sa.String(255))
    archive_sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(64))
    key_id: Mapped[str] = mapped_column(sa.String(16))  # which key signed it
    signature: Mapped[str] = mapped_column(sa.String(64))
