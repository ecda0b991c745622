"""Issue 23: a rollout's Jira change ticket, the Jira events already acted on, and the
exceptions requested in Jira."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, state_check


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


class ExceptionRequestState(StrEnum):
    REQUESTED = "requested"
    GRANTED = "granted"
    REJECTED = "rejected"
    INVALID = "invalid"  # its fields do not make an exception; the issue says why


class ExceptionRequest(Base):
    """An exception asked for in Jira: an issue of the configured type, whose approval by
    an operator (in Jira, by the vote rules) grants the exception (``exception_id``)."""

    __tablename__ = "exception_requests"
    __table_args__ = (state_check(ExceptionRequestState),)
    id: Mapped[int] = mapped_column(primary_key=True)
    issue_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    ticket_id: Mapped[int]  # the adopted ``tickets`` row (the issue itself)
    host: Mapped[str | None] = mapped_column(sa.String(255))
    package: Mapped[str | None] = mapped_column(sa.String(255))
    cve: Mapped[str | None] = mapped_column(sa.String(32))
    owner: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[dt.datetime | None]
    requested_by: Mapped[str] = mapped_column(sa.String(255))  # the Jira reporter
    requester: Mapped[str | None] = mapped_column(sa.String(64))  # as a Slack user, if mapped
    problem: Mapped[str | None] = mapped_column(sa.Text)
    exception_id: Mapped[int | None]
    decided_by: Mapped[str | None] = mapped_column(sa.String(64))
    decided_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
