"""The Jira change ticket of a rollout (issue 23) and the Jira events already counted."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base


class ChangeRecord(Base):
    """A rollout's change ticket: which ``tickets`` row it is, how far the audit trail was
    told on it (``cursor``: the last event id mirrored), and the patch-set hash and gate
    it last showed (a vote by transition is bound to that hash)."""

    __tablename__ = "change_records"
    rollout_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ticket_id: Mapped[int] = mapped_column(unique=True)
    cursor: Mapped[int] = mapped_column(default=0)
    shown_hash: Mapped[str | None] = mapped_column(sa.String(64))
    shown_gate_id: Mapped[int | None]
    created_at: Mapped[dt.datetime]


class JiraEventSeen(Base):
    """A Jira event PatchGate acted on (a webhook delivery, a comment, a changelog entry),
    by its source id: the webhook and the poller both claim the same id, so a vote is
    counted once and a replayed delivery is refused."""

    __tablename__ = "jira_events_seen"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(255), unique=True)
    seen_at: Mapped[dt.datetime]
