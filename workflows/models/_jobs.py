"""The jobs PatchGate handed to batch backends (issue 19): one row per job, written
before the job is submitted (its idempotency key), with the tool's job id once known.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, utcnow


class JobState(StrEnum):
    INTENDED = "intended"  # the key is persisted; the job may or may not be submitted
    SUBMITTED = "submitted"  # the tool's job id is stored; the engine follows it
    DONE = "done"  # the per-host outcomes are recorded on the host runs


class BackendJob(Base):
    """One job of a batch backend: apply, rollback or reboot on some hosts of a ring.

    ``key`` is unique and travels to the tool; after a crash the engine finds the job by
    it (``BatchBackend.find``) rather than submitting again. ``hosts`` lists the host
    runs' host names the job works on; ``result`` summarises the outcomes per status.
    """

    __tablename__ = "backend_jobs"
    __table_args__ = (
        sa.CheckConstraint("state IN ('intended', 'submitted', 'done')", name="state"),
        sa.CheckConstraint("action IN ('apply', 'rollback', 'reboot')", name="action"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    ring_id: Mapped[int] = mapped_column(sa.ForeignKey("rings.id", ondelete="CASCADE"))
    batch: Mapped[int | None]  # None: a ring-wide job (the ring's rollback, an abort's)
    backend: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(128), unique=True)
    job_id: Mapped[str | None] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16), default=JobState.INTENDED.value)
    tool_state: Mapped[str | None] = mapped_column(sa.String(64))  # the tool's own word
    hosts: Mapped[list[Any]] = mapped_column(default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
