"""SQLAlchemy 2 typed ORM models. States are strings with CHECK constraints."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from workflows.states import GateState, HostState, RingState, RolloutState

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Time-zone-aware datetimes, stored as UTC on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware one")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


def _state_check(values: type[StrEnum], column: str = "state") -> sa.CheckConstraint:
    listed = ", ".join(f"'{v.value}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=column)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class GateKind(StrEnum):
    NONE = "none"
    AUTO = "auto"
    APPROVAL = "approval"


class LeaderState(Base):
    """One row per lock name; the epoch increments at every takeover."""

    __tablename__ = "leader_state"
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(sa.Integer, default=0)
    holder: Mapped[str | None] = mapped_column(sa.String(255))
    acquired_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]


class Host(Base):
    """A host as last seen: inventory attributes plus facts gathered over SSH."""

    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    address: Mapped[str | None] = mapped_column(sa.String(255))
    port: Mapped[int | None]
    groups: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    environment: Mapped[str | None] = mapped_column(sa.String(64))
    owner: Mapped[str | None] = mapped_column(sa.String(255))
    criticality: Mapped[str | None] = mapped_column(sa.String(16))
    internet_facing: Mapped[bool] = mapped_column(default=False)
    os_id: Mapped[str | None] = mapped_column(sa.String(64))
    os_version: Mapped[str | None] = mapped_column(sa.String(64))
    arch: Mapped[str | None] = mapped_column(sa.String(32))
    kernel: Mapped[str | None] = mapped_column(sa.String(128))
    package_manager: Mapped[str | None] = mapped_column(sa.String(16))
    boot_id: Mapped[str | None] = mapped_column(sa.String(64))
    reboot_required: Mapped[bool | None]
    reachable: Mapped[bool | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    facts_at: Mapped[dt.datetime | None]
    last_patched_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (_state_check(RolloutState), sa.Index("ix_rollouts_state", "state"))
    id: Mapped[int] = mapped_column(primary_key=True)
    plan_name: Mapped[str] = mapped_column(sa.String(128))
    plan_hash: Mapped[str] = mapped_column(sa.String(64))
    plan_snapshot: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(sa.String(32), default=RolloutState.SCHEDULED.value)
    requested_by: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.String(16), default="cli")
    emergency: Mapped[bool] = mapped_column(default=False)
    hold_reason: Mapped[str | None] = mapped_column(sa.Text)
    hold_by: Mapped[str | None] = mapped_column(sa.String(64))
    held_at: Mapped[dt.datetime | None]
    abort_requested_by: Mapped[str | None] = mapped_column(sa.String(64))
    abort_reason: Mapped[str | None] = mapped_column(sa.Text)
    patchset: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    patchset_hash: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    epoch: Mapped[int] = mapped_column(default=0)
    window_end: Mapped[dt.datetime | None]  # a scheduled rollout's window
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Ring(Base):
    __tablename__ = "rings"
    __table_args__ = (
        _state_check(RingState),
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


class Gate(Base):
    __tablename__ = "gates"
    __table_args__ = (
        _state_check(GateState),
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
    opened_at: Mapped[dt.datetime] = mapped_column(default=_now)
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
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class HostRun(Base):
    """One host's work in one rollout."""

    __tablename__ = "host_runs"
    __table_args__ = (
        _state_check(HostState),
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
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)


class HostException(Base):
    """A time-boxed exception: the host is left out of rollouts until it expires."""

    __tablename__ = "exceptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    package: Mapped[str | None] = mapped_column(sa.String(255))  # None: the whole host
    cve: Mapped[str | None] = mapped_column(sa.String(32))  # the advisory it is about, if any
    channel: Mapped[str | None] = mapped_column(sa.String(32))  # where its lapse is announced
    lapsed_at: Mapped[dt.datetime | None]  # set when its expiry was processed
    reason: Mapped[str] = mapped_column(sa.Text)
    owner: Mapped[str] = mapped_column(sa.String(64))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[dt.datetime]
    ticket_key: Mapped[str | None] = mapped_column(sa.String(64))
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)


class HostLease(Base):
    """At most one rollout works on a host at a time."""

    __tablename__ = "host_leases"
    host_name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    rollout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    acquired_at: Mapped[dt.datetime] = mapped_column(default=_now)


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
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    processed_at: Mapped[dt.datetime | None]


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
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditHead(Base):
    """The chain's head, updated with every append, so a deleted tail is caught too."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(sa.String(64))
    count: Mapped[int] = mapped_column(default=0)


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
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=_now)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(128))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    delivered_at: Mapped[dt.datetime | None]


class SeenSignature(Base):
    """A Slack request signature already accepted: a second request with it is a replay.

    Kept in the database so every replica refuses it; rows older than Slack's 5-minute
    window are pruned as new ones arrive.

    It is also the journal of requests acted on after their ack (e.g. an Approve click):
    such a row carries ``kind`` and the signed ``body``, written in the same batched
    insert before the ack, and ``processed_at`` is set in the transaction that records
    what the request decided (exactly once). A row with a kind is kept until processed.
    """

    __tablename__ = "slack_seen_signatures"
    signature: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(index=True)
    kind: Mapped[str | None] = mapped_column(sa.String(40), default=None)
    body: Mapped[str | None] = mapped_column(sa.Text, default=None)
    processed_at: Mapped[dt.datetime | None] = mapped_column(default=None)


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
        _state_check(TicketState),
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
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_now, onupdate=_now)
    resolved_at: Mapped[dt.datetime | None]


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
    created_at: Mapped[dt.datetime] = mapped_column(default=_now)
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


class KnownHostKey(Base):
    """An SSH host key accepted at first contact (the inventory opted in for that host),
    shared by every replica; ``name`` is how known_hosts names it (``addr``/``[addr]:port``)."""

    __tablename__ = "known_host_keys"
    __table_args__ = (sa.UniqueConstraint("name", "key_type"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    key_type: Mapped[str] = mapped_column(sa.String(64))
    key_base64: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(128))
    accepted_at: Mapped[dt.datetime] = mapped_column(default=_now)


class Assessment(Base):
    """One fix a host needs, as last assessed (advisories, CVEs, risk and its reasons).

    A host's assessment is replaced as a whole; a row with an empty ``package`` records
    that the host was assessed at ``assessed_at`` and needed nothing.
    """

    __tablename__ = "assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    package: Mapped[str] = mapped_column(sa.String(255))
    current: Mapped[str | None] = mapped_column(sa.String(255))
    candidate: Mapped[str] = mapped_column(sa.String(255))
    advisories: Mapped[list[Any]] = mapped_column(default=list)
    cves: Mapped[list[Any]] = mapped_column(default=list)
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    cvss: Mapped[float | None]
    known_exploited: Mapped[bool] = mapped_column(default=False)
    security: Mapped[bool] = mapped_column(default=False)
    published: Mapped[dt.datetime | None]
    risk: Mapped[int] = mapped_column(default=0)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    assessed_at: Mapped[dt.datetime]


class HostAssessment(Base):
    """When a host was risk-assessed and how many security fixes it needed (kept for the
    coverage figures of evidence bundles; ``assessments`` holds only the latest)."""

    __tablename__ = "host_assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    assessed_at: Mapped[dt.datetime] = mapped_column(index=True)
    fixes: Mapped[int] = mapped_column(default=0)


class FixDetection(Base):
    """A security fix a host needed, kept from the first assessment that found it.

    Time to patch starts at ``published`` (the advisory's publication) when known, else at
    ``first_detected_at``; it ends when a host run leaves the package at ``candidate`` or
    later. ``last_detected_at`` is the latest assessment that still listed it.
    """

    __tablename__ = "fix_detections"
    __table_args__ = (
        sa.UniqueConstraint("host", "package", "candidate", name="uq_fix_detections_host_fix"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    package: Mapped[str] = mapped_column(sa.String(255))
    current: Mapped[str | None] = mapped_column(sa.String(255))
    candidate: Mapped[str] = mapped_column(sa.String(255))
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    cvss: Mapped[float | None]
    published: Mapped[dt.datetime | None]
    advisories: Mapped[list[Any]] = mapped_column(default=list)
    cves: Mapped[list[Any]] = mapped_column(default=list)
    first_detected_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_detected_at: Mapped[dt.datetime]
