"""The notifications on topic ``notify``, as typed events.

An outbox row stores ``event.model_dump(mode="json")``: a ``type`` that names the model
(the union's discriminator) and a ``version`` of this schema, so a reader can tell the
shapes apart after a change. Adapters (Slack, the logging notifier) read a row back with
:func:`workflows.notify.parse_notification` and render by the model's class.

Fields that every real producer fills but some are optional here (``rollout_id``,
``plan``, a ring's ``health``): rows written before these models existed, and hand-made
rows in tests, lack them, and the renderers never needed them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = 1  # a row of a later version is refused, not misread


class NoteAbout(StrEnum):
    """What a reply in a rollout's thread is about (the old payloads' ``kind``)."""

    NOTE = "rollout.note"  # a note with no more specific subject
    PAUSE = "rollout.pause"
    RESUME = "rollout.resume"
    ABORT = "rollout.abort"
    ABORTED = "rollout.aborted"
    WAITING = "rollout.waiting"
    FAILED = "rollout.failed"
    PINNED = "rollout.pinned"
    SUCCEEDED = "rollout.succeeded"
    REJECTED = "rollout.rejected"
    ROLLED_BACK = "rollout.rolled_back"
    FROZEN = "rollout.frozen"
    UNFROZEN = "rollout.unfrozen"
    WINDOW_OPENED = "rollout.window_opened"
    RING_STARTED = "ring.started"
    RING_DONE = "ring.done"
    BATCH_DONE = "batch.done"
    BATCH_WAITING = "batch.waiting"
    GATE_OPENED = "gate.opened"
    GATE_APPROVED = "gate.approved"
    GATE_VOTE = "gate.vote"
    GATE_ESCALATED = "gate.escalated"
    GATE_REMINDER = "gate.reminder"
    TICKET_COMMENTED = "ticket.commented"
    TICKET_FILED = "ticket.filed"
    TICKET_RESOLVED = "ticket.resolved"


class PlanNoteAbout(StrEnum):
    """What a plan's channel message from the scheduler is about (a window not started)."""

    WINDOW_MISSED = "schedule.window_missed"
    WINDOW_FROZEN = "schedule.window_frozen"
    WINDOW_BUSY = "schedule.window_busy"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Event(_Model):
    version: Literal[1] = SCHEMA_VERSION
    channel: str | None = None
    text: str


class _RolloutEvent(_Event):
    rollout_id: int | None = None
    plan: str | None = None


# --- facts carried by events ----------------------------------------------------------------


class Health(_Model):
    ok: int = 0
    total: int = 0


class RingResults(_Model):
    """What a ring did: host counts by state, health checks passed, duration."""

    ring: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    health: Health | None = None
    duration_seconds: float | None = None


class PackageChange(_Model):
    """A package of the pinned set and the versions it moves from (``None``: new)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: str
    from_: str | None = Field(default=None, alias="from")
    to: str
    advisories: list[str] | None = None
    # a vendor update's KB and title, shown instead of versions (issue 21); None: a package
    label: str | None = None


class ExceptionApplied(_Model):
    """A host or package an active exception left out of a rollout."""

    host: str
    package: str | None = None
    exception_id: int | None = None
    cve: str | None = None
    owner: str | None = None
    reason: str | None = None
    expires_at: str | None = None
    ticket_key: str | None = None


class SummaryFacts(_Model):
    """The final summary's numbers: hosts by state, packages, exceptions, durations."""

    counts: dict[str, int] = Field(default_factory=dict)
    exceptions: list[ExceptionApplied] = Field(default_factory=list)
    packages: list[PackageChange] = Field(default_factory=list)
    duration_seconds: float | None = None
    time_to_last_patched_seconds: float | None = None


class TicketRef(_Model):
    """A Jira ticket of a rolled-back ring's host, shown on its rollback alert."""

    host: str | None = None
    key: str
    cause: str | None = None
    url: str | None = None


# --- the rollout's parent message -----------------------------------------------------------


class ParentPosted(_RolloutEvent):
    """The rollout's parent message, posted once; its thread holds the rest."""

    type: Literal["rollout.parent"] = "rollout.parent"


class ParentUpdated(_RolloutEvent):
    """The parent message updated in place with the rollout's state."""

    type: Literal["rollout.parent.update"] = "rollout.parent.update"
    state: str | None = None
    reason: str | None = None


# --- replies in the rollout's thread --------------------------------------------------------


class _ThreadEvent(_RolloutEvent):
    about: NoteAbout = NoteAbout.NOTE


class ThreadNote(_ThreadEvent):
    """A plain reply in the rollout's thread."""

    type: Literal["rollout.note"] = "rollout.note"


class PatchSetPinned(_ThreadEvent):
    type: Literal["rollout.pinned"] = "rollout.pinned"
    about: NoteAbout = NoteAbout.PINNED
    patchset_hash: str | None = None


class BatchDone(_ThreadEvent):
    """A batch finished; ``failures`` counts the ring's failures so far."""

    type: Literal["batch.done"] = "batch.done"
    about: NoteAbout = NoteAbout.BATCH_DONE
    failures: int


class GateReminder(_ThreadEvent):
    type: Literal["gate.reminder"] = "gate.reminder"
    about: NoteAbout = NoteAbout.GATE_REMINDER
    gate_id: int
    percent: int


class TicketNote(_ThreadEvent):
    """A Jira ticket filed, commented on or resolved for a host of the rollout."""

    type: Literal["ticket.note"] = "ticket.note"
    ticket_key: str | None = None
    ticket_url: str | None = None
    host: str | None = None
    cause: str | None = None
    transitioned: bool | None = None


class RolloutSummary(_ThreadEvent):
    """The rollout's last reply: how it ended, with its numbers."""

    type: Literal["rollout.summary"] = "rollout.summary"
    summary: SummaryFacts


class GateOpened(_ThreadEvent):
    """A readiness message: the previous ring's results, the packages, and (for an
    approval gate) the Approve / Reject buttons."""

    type: Literal["gate.opened"] = "gate.opened"
    about: NoteAbout = NoteAbout.GATE_OPENED
    gate_id: int
    gate_kind: str = "approval"
    ring: str | None = None
    patchset_hash: str | None = None
    untested_platforms: list[str] | None = None
    quorum: int | None = None
    previous_ring: RingResults | None = None
    packages: list[PackageChange] | None = None
    host_count: int | None = None


# --- in-place updates and alerts ------------------------------------------------------------


class GateClosed(_RolloutEvent):
    """A readiness message updated in place: its buttons replaced by the decision."""

    type: Literal["gate.closed"] = "gate.closed"
    gate_id: int
    ring: str | None = None
    patchset_hash: str | None = None
    state: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    approvers: list[str] = Field(default_factory=list)


class _Alert(_RolloutEvent):
    ring: str | None = None
    ring_id: int | None = None
    hosts: list[str] = Field(default_factory=list)
    tickets: list[TicketRef] = Field(default_factory=list)


class RollbackAlert(_Alert):
    """An automatic rollback started: a message to the on-call channel."""

    type: Literal["rollout.alert"] = "rollout.alert"


class RollbackAlertUpdate(_Alert):
    """The rollback alert updated in place once its Jira tickets are known."""

    type: Literal["rollout.alert.update"] = "rollout.alert.update"


# --- channel messages outside a rollout -----------------------------------------------------


class ExceptionLapsed(_Event):
    type: Literal["exception.lapsed"] = "exception.lapsed"
    exception_id: int
    ticket_key: str | None = None


class PlanNote(_Event):
    """A message to a plan's channel from the scheduler (a window that did not start)."""

    type: Literal["plan.note"] = "plan.note"
    about: PlanNoteAbout
    plan: str


class ZoneAlert(_Event):
    """A zone of workers has hosts waiting and no live worker (``back``: one came back):
    a message to the on-call channel, once per outage (issue 24)."""

    type: Literal["zone.alert"] = "zone.alert"
    zone: str
    back: bool = False
    waiting_hosts: int = 0
    wait_seconds: float | None = None  # how long a host step waits before failing
    down_seconds: float | None = None  # on ``back``: how long the zone had no worker


Notification = Annotated[
    ParentPosted
    | ParentUpdated
    | ThreadNote
    | PatchSetPinned
    | BatchDone
    | GateReminder
    | TicketNote
    | RolloutSummary
    | GateOpened
    | GateClosed
    | RollbackAlert
    | RollbackAlertUpdate
    | ExceptionLapsed
    | PlanNote
    | ZoneAlert,
    Field(discriminator="type"),
]

# Posted as replies under the rollout's parent message.
ThreadEvent = (
    ThreadNote
    | PatchSetPinned
    | BatchDone
    | GateReminder
    | TicketNote
    | RolloutSummary
    | GateOpened
)
