"""A rollout and what it owns: its rings, its host runs, and the leases it holds on hosts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, state_check, utcnow
from workflows.states import HostState, RingState, RolloutState


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (state_check(RolloutState), sa.Index("ix_rollouts_state", "state"))
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_name: Mapped[str] = mapped_column(sa.String(128))
    plan_hash: Mapped[str] = mapped_column(sa.String(64))
    plan_snapshot: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(sa.String(32), default=RolloutState.SCHEDULED.value)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16), default="cli")
    emergency: Mapped[bool] = mapped_column(default=False)
    emergency_cve: Mapped[str | None] = mapped_column(sa.String(64))  # what it was started for
    hold_reason: Mapped[str | None] = mapped_column(sa.Text)
    hold_by: Mapped[str | None] = mapped_column(sa.String(64))
    held_at: Mapped[dt.datetime | None]
    abort_requested_by: Mapped[str | None] = mapped_column(sa.String(64))
    abort_reason: Mapped[str | None] = mapped_column(sa.Text)
    patchset: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    patchset_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # platform -> name -> identity of the pinned entries that are vendor updates (KB,
    # catalog id, title, classification); None when every entry is a package. Hashed
    # with the set (workflows.assessment.patchset_hash).
    patchset_updates: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    epoch: Mapped[int] = mapped_column(default=0)
    window_end: Mapped[dt.datetime | None]  # a scheduled rollout's window
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Ring(Base):
    __tablename__ = "rings"
    __table_args__ = (
        state_check(RingState),
        sa.UniqueConstraint("rollout_id", "position", name="uq_rings_rollout_position"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(32), default=RingState.PENDING.value)
    host_count: Mapped[int] = mapped_column(default=0)
    batch_size: Mapped[int] = mapped_column(default=1)
    batch_count: Mapped[int] = mapped_column(default=0)
    failure_budget: Mapped[int] = mapped_column(default=0)
    next_batch: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class HostRun(Base):
    """One host's work in one rollout."""

    __tablename__ = "host_runs"
    __table_args__ = (
        state_check(HostState),
        sa.UniqueConstraint("rollout_id", "host_name", name="uq_host_runs_rollout_host"),
        sa.Index("ix_host_runs_ring_state", "ring_id", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    ring_id: Mapped[int] = mapped_column(sa.ForeignKey("rings.id", ondelete="CASCADE"))
    host_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    batch: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(sa.String(32), default=HostState.PENDING.value)
    platform: Mapped[str | None] = mapped_column(sa.String(128))
    failure: Mapped[bool] = mapped_column(default=False)
    op_id: Mapped[str | None] = mapped_column(sa.String(64))
    before_versions: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after_versions: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    boot_id_before: Mapped[str | None] = mapped_column(sa.String(64))
    reboot_required: Mapped[bool | None]
    exit_code: Mapped[int | None]
    output_tail: Mapped[str | None] = mapped_column(sa.Text)
    health: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    ticket_key: Mapped[str | None] = mapped_column(sa.String(64))
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id", ondelete="SET NULL"))
    held_packages: Mapped[list[Any] | None] = mapped_column(sa.JSON)  # package exceptions
    # The host's share of its platform's pinned set (None: the whole platform set, as
    # rows written before issue 16 had it).
    packages: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # Updates the host's assessment selected that this run does not install, with why
    # (package -> reason): the host is not fully patched after its run.
    left_over: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # The backend that works on the host in this run (issue 19; None: rows from before,
    # all patched by PatchGate's own SSH executor).
    backend: Mapped[str | None] = mapped_column(sa.String(32))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HostLease(Base):
    """At most one rollout works on a host at a time."""

    __tablename__ = "host_leases"
    host_name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    acquired_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
