"""The leader's working tables: its lock, the requests it acts on, the outbox it delivers,
and the Slack signatures already seen.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, utcnow


class RequestKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    RELOAD = "reload"  # plan reload (no rollout)


class RequestState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    REFUSED = "refused"


class OutboxState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class LeaderState(Base):
    """One row per lock name; the epoch increments at every takeover."""

    __tablename__ = "leader_state"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(sa.Integer, default=0)
    holder: Mapped[str | None] = mapped_column(sa.String(255))
    acquired_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]


class Request(Base):
    """A request from the CLI, Slack or a non-leader replica for the leader to act on."""

    __tablename__ = "requests"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'done', 'refused')", name="state"),
        sa.CheckConstraint("kind IN ('start', 'pause', 'resume', 'abort', 'reload')", name="kind"),
        sa.Index("ix_requests_state", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    rollout_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16), default="cli")
    state: Mapped[str] = mapped_column(sa.String(16), default=RequestState.PENDING.value)
    result: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None]


class OutboxItem(Base):
    """A message or ticket to deliver, written with the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        sa.Index("ix_outbox_state_next", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    topic: Mapped[str] = mapped_column(sa.String(32))
    rollout_id: Mapped[int | None] = mapped_column(index=True)
    parent_key: Mapped[str | None] = mapped_column(sa.String(255))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(sa.String(16), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(128))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]


class SeenSignature(Base):
    """A Slack request signature already accepted: a second request with it is a replay.

    Kept in the database so every replica refuses it; rows older than Slack's 5-minute
    window are pruned as new ones arrive.

    It is also the journal of requests acted on after their ack (e.g. an Approve click):
    such a row carries ``kind`` and the signed ``body``, written in the same batched
    insert before the ack, and ``processed_at`` is set in the transaction that records
    what the request decided (exactly once). A row with a kind is kept until processed.
    ``tries`` counts the attempts that failed: after ``bot.slack.journal.MAX_TRIES`` the
    row is given up (processed, with a ``slack.journal.dead`` audit event), not retried
    by every sweep forever.
    """

    __tablename__ = "slack_seen_signatures"
    signature: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(index=True)
    kind: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    body: Mapped[str | None] = mapped_column(sa.Text, default=None)
    processed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    tries: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))
