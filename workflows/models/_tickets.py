"""PatchGate's record of the Jira tickets it opened."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, state_check, utcnow


class TicketState(StrEnum):
    OPEN = "open"
    RESOLVING = "resolving"
    RESOLVED = "resolved"


class Ticket(Base):
    """PatchGate's memory of a Jira ticket: at most one open ticket per subject and cause.

    ``key`` is the Jira key once the create row (``outbox_key``) was delivered.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        state_check(TicketState),
        sa.Index("ix_tickets_subject_cause_state", "subject", "cause", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(255))  # a host name, or plan:NAME
    cause: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str | None] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16), default=TicketState.OPEN.value)
    outbox_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    resolve_outbox_key: Mapped[str | None] = mapped_column(sa.String(255))
    rollout_id: Mapped[int | None] = mapped_column(index=True)
    host_run_id: Mapped[int | None]
    exception_id: Mapped[int | None] = mapped_column(index=True)
    resolved_rollout_id: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[dt.datetime | None]
