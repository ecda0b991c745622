"""A ring's gate and the votes cast on it."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, state_check, utcnow
from workflows.states import GateState


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class GateKind(StrEnum):
    NONE = "none"
    AUTO = "auto"
    APPROVAL = "approval"


class Gate(Base):
    __tablename__ = "gates"
    __table_args__ = (
        state_check(GateState),
        sa.CheckConstraint("kind IN ('auto', 'approval')", name="kind"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    ring_id: Mapped[int] = mapped_column(sa.ForeignKey("rings.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16), default=GateState.OPEN.value)
    quorum: Mapped[int] = mapped_column(default=1)
    patchset_hash: Mapped[str | None] = mapped_column(sa.String(64))
    untested_platforms: Mapped[list[Any]] = mapped_column(default=list)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    soak_until: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    escalated: Mapped[bool] = mapped_column(default=False)
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(sa.String(255))
    reason: Mapped[str | None] = mapped_column(sa.Text)


class Approval(Base):
    """One row per vote on a gate."""

    __tablename__ = "approvals"
    __table_args__ = (
        sa.UniqueConstraint("gate_id", "user_id", name="uq_approvals_gate_user"),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    gate_id: Mapped[int] = mapped_column(sa.ForeignKey("gates.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(64))
    decision: Mapped[str] = mapped_column(sa.String(16))
    patchset_hash: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(16), default="cli")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
