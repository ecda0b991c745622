"""SQLAlchemy 2 typed ORM models. States are strings with CHECK constraints.

The models live in private modules by aggregate; this surface re-exports every model and
enum, so ``from workflows.models import X`` is the one way to reach them.
"""

from __future__ import annotations

from workflows.models._audit import AuditCheckpoint, AuditHead, Event
from workflows.models._base import NAMING_CONVENTION, Base, UTCDateTime
from workflows.models._change import (
    ChangeRecord,
    ExceptionRequest,
    ExceptionRequestState,
    JiraEventSeen,
)
from workflows.models._gates import Approval, Decision, Gate, GateKind
from workflows.models._hosts import (
    Assessment,
    FixDetection,
    Host,
    HostAssessment,
    HostException,
    KnownHostKey,
)
from workflows.models._jobs import BackendJob, JobState
from workflows.models._ops import (
    LeaderState,
    OutboxItem,
    OutboxState,
    Request,
    RequestKind,
    RequestState,
    SeenSignature,
)
from workflows.models._rollouts import HostLease, HostRun, Ring, Rollout
from workflows.models._schedule import DueKind, DueState, DueTime, Freeze, PlanSchedule
from workflows.models._tickets import Ticket, TicketState
from workflows.models._tokens import ApiToken

__all__ = [
    "NAMING_CONVENTION",
    "ApiToken",
    "Approval",
    "Assessment",
    "AuditCheckpoint",
    "AuditHead",
    "BackendJob",
    "Base",
    "ChangeRecord",
    "Decision",
    "DueKind",
    "DueState",
    "DueTime",
    "Event",
    "ExceptionRequest",
    "ExceptionRequestState",
    "FixDetection",
    "Freeze",
    "Gate",
    "GateKind",
    "Host",
    "HostAssessment",
    "HostException",
    "HostLease",
    "HostRun",
    "JiraEventSeen",
    "JobState",
    "KnownHostKey",
    "LeaderState",
    "OutboxItem",
    "OutboxState",
    "PlanSchedule",
    "Request",
    "RequestKind",
    "RequestState",
    "Ring",
    "Rollout",
    "SeenSignature",
    "Ticket",
    "TicketState",
    "UTCDateTime",
]
