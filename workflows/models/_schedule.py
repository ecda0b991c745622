"""The scheduler's truth: loaded plan schedules, due times, and change freezes."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, utcnow


class DueState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


class DueKind(StrEnum):
    WINDOW = "window"  # a plan's window opens
    RUN = "run"  # a one-off rollout (`schedule run PLAN --at`)
    REMINDER = "reminder"  # remind a gate's approvers


class PlanSchedule(Base):
    """A scheduled plan as the leader last loaded it (`plan reload` refreshes it)."""

    __tablename__ = "plan_schedules"
    plan_name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    plan_hash: Mapped[str] = mapped_column(sa.String(64))
    plan_snapshot: Mapped[dict[str, Any]]
    loaded_at: Mapped[dt.datetime]
    last_window_start: Mapped[dt.datetime | None]  # the last window dealt with


class DueTime(Base):
    """A time at which the leader must act: the database is the scheduler's truth."""

    __tablename__ = "due_times"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'done', 'cancelled')", name="state"),
        sa.CheckConstraint("kind IN ('window', 'run', 'reminder')", name="kind"),
        sa.Index("ix_due_times_state_due", "state", "due_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    due_at: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime | None]
    plan_name: Mapped[str | None] = mapped_column(sa.String(128))
    rollout_id: Mapped[int | None]
    gate_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str | None] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16), default=DueState.PENDING.value)
    result: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None]


class Freeze(Base):
    """A global change freeze: holds running rollouts, blocks new ones, until lifted."""

    __tablename__ = "freezes"
    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime]
    until: Mapped[dt.datetime | None]
    lifted_at: Mapped[dt.datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(sa.String(64))
