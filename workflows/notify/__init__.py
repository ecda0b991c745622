"""The notifications the domain emits on outbox topic ``notify``: typed events, the
builders that wrap them as outbox rows, and the reader that gets them back.

    _events.py    the event models (a union discriminated by ``type``, with ``version``)
    _builders.py  rollout_parent, rollout_note, parent_update, gate_opened, gate_closed,
                  rollback_alert, rollback_alert_update, zone_alert: events as outbox rows
    _reader.py    parse_notification: a row's payload back as an event (old rows too)
    _keys.py      the deterministic outbox keys
    _texts.py     the builders' own sentences

The facts some events carry (a ring's results, the packages, a rollout's numbers) are
read from the database by ``workflows.reports``; this room imports no other room's logic.
"""

from workflows.notify import _texts as texts
from workflows.notify._builders import (
    exception_lapsed,
    gate_closed,
    gate_opened,
    parent_update,
    plan_note,
    rollback_alert,
    rollback_alert_update,
    rollout_note,
    rollout_parent,
    zone_alert,
)
from workflows.notify._events import (
    SCHEMA_VERSION,
    BatchDone,
    ExceptionApplied,
    ExceptionLapsed,
    GateClosed,
    GateOpened,
    GateReminder,
    Health,
    NoteAbout,
    Notification,
    PackageChange,
    ParentPosted,
    ParentUpdated,
    PatchSetPinned,
    PlanNote,
    PlanNoteAbout,
    RingResults,
    RollbackAlert,
    RollbackAlertUpdate,
    RolloutSummary,
    SummaryFacts,
    ThreadEvent,
    ThreadNote,
    TicketNote,
    TicketRef,
    ZoneAlert,
)
from workflows.notify._keys import (
    TOPIC,
    gate_opened_key,
    left_broken_alert_key,
    left_broken_alert_prefix,
    parent_key,
    rollback_alert_key,
)
from workflows.notify._reader import notification_kind, parse_notification
from workflows.notify._texts import mrkdwn

__all__ = [
    "SCHEMA_VERSION",
    "TOPIC",
    "BatchDone",
    "ExceptionApplied",
    "ExceptionLapsed",
    "GateClosed",
    "GateOpened",
    "GateReminder",
    "Health",
    "NoteAbout",
    "Notification",
    "PackageChange",
    "ParentPosted",
    "ParentUpdated",
    "PatchSetPinned",
    "PlanNote",
    "PlanNoteAbout",
    "RingResults",
    "RollbackAlert",
    "RollbackAlertUpdate",
    "RolloutSummary",
    "SummaryFacts",
    "ThreadEvent",
    "ThreadNote",
    "TicketNote",
    "TicketRef",
    "ZoneAlert",
    "exception_lapsed",
    "gate_closed",
    "gate_opened",
    "gate_opened_key",
    "left_broken_alert_key",
    "left_broken_alert_prefix",
    "mrkdwn",
    "notification_kind",
    "parent_key",
    "parent_update",
    "parse_notification",
    "plan_note",
    "rollback_alert",
    "rollback_alert_key",
    "rollback_alert_update",
    "rollout_note",
    "rollout_parent",
    "texts",
    "zone_alert",
]
