"""Reading an outbox row's payload back as a typed event, in either shape.

Rows written by this version carry ``type`` (and ``version``). Rows written before the
events were typed carry a ``kind`` string instead; pending ones are still in databases
after an upgrade, so they are read here too, into the same models. An old row is read
leniently (keys no model knows are dropped: it must still be delivered); a typed row,
and anything a builder makes, strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

from workflows.notify._events import (
    BatchDone,
    ExceptionLapsed,
    GateClosed,
    GateOpened,
    GateReminder,
    NoteAbout,
    Notification,
    ParentPosted,
    ParentUpdated,
    PatchSetPinned,
    PlanNote,
    PlanNoteAbout,
    RollbackAlert,
    RollbackAlertUpdate,
    RolloutSummary,
    ThreadEvent,
    ThreadNote,
    TicketNote,
)
from workflows.notify._texts import unknown_note

_TICKET_NOTES = frozenset(
    {NoteAbout.TICKET_COMMENTED, NoteAbout.TICKET_FILED, NoteAbout.TICKET_RESOLVED}
)
_Unthreaded = (
    ParentPosted
    | ParentUpdated
    | GateClosed
    | RollbackAlert
    | RollbackAlertUpdate
    | ExceptionLapsed
)
# old ``kind`` -> model, for the events that are not thread notes
_OLD_KINDS: Mapping[str, type[_Unthreaded]] = {
    "rollout.parent": ParentPosted,
    "rollout.parent.update": ParentUpdated,
    "gate.closed": GateClosed,
    "rollout.alert": RollbackAlert,
    "rollout.alert.update": RollbackAlertUpdate,
    "exception.lapsed": ExceptionLapsed,
}
_OLD_ONLY_KEYS = frozenset({"kind", "thread"})  # the old shape's own keys
_PLAN_NOTES = frozenset(about.value for about in PlanNoteAbout)


@cache
def _adapter() -> TypeAdapter[Notification]:
    return TypeAdapter(Notification)


def parse_notification(payload: Mapping[str, Any]) -> Notification:
    """The typed event of a ``notify`` row's payload, new shape or old.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) for a payload that is
    neither: such a row can never be delivered."""
    if "type" in payload:
        return _adapter().validate_python(dict(payload))
    kind = payload.get("kind")
    if not isinstance(kind, str):
        raise ValueError("a notification payload with neither 'type' nor 'kind'")
    fields = {k: v for k, v in payload.items() if k not in _OLD_ONLY_KEYS}
    model = _OLD_KINDS.get(kind)
    if model is not None:
        return model.model_validate(_known(model, fields))
    if kind in _PLAN_NOTES:
        return PlanNote.model_validate(_known(PlanNote, {**fields, "about": kind}))
    if not fields.get("summary"):
        fields.pop("summary", None)
    return note_event(kind, fields, lenient=True)


def note_event(kind: str, fields: Mapping[str, Any], *, lenient: bool = False) -> ThreadEvent:
    """The typed reply for a thread note of ``kind`` (the builders' ``kind=``).

    Refuses a kind that is not a :class:`NoteAbout`, and (unless ``lenient``) fields the
    note's model does not have."""
    try:
        about = NoteAbout(kind)
    except ValueError:
        raise ValueError(unknown_note(kind)) from None
    model: type[ThreadEvent]
    if about is NoteAbout.GATE_OPENED:
        model = GateOpened
    elif fields.get("summary"):
        model = RolloutSummary
    elif about in _TICKET_NOTES:
        model = TicketNote
    elif about is NoteAbout.GATE_REMINDER:
        model = GateReminder
    elif about is NoteAbout.BATCH_DONE and "failures" in fields:
        model = BatchDone
    elif about is NoteAbout.PINNED and "patchset_hash" in fields:
        model = PatchSetPinned
    else:
        model = ThreadNote
    data = {**fields, "about": about}
    return model.model_validate(_known(model, data) if lenient else data)


def _known(model: type[BaseModel], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` without the keys ``model`` does not know (by field name or alias)."""
    names = {info.alias or name for name, info in model.model_fields.items()}
    return {k: v for k, v in fields.items() if k in names}


def notification_kind(event: Notification) -> str:
    """What an event is about as the old payloads' ``kind`` string (``rollout.waiting``,
    ``gate.closed``, ...): for logs, and for picking rows by subject in either shape."""
    about = getattr(event, "about", None)
    return str(about) if about is not None else event.type
