"""The notification builders: typed events wrapped as outbox rows (``outbox.enqueue``'s
keyword arguments).

Each rollout has one parent message (key ``rollout:ID:parent``); progress goes to its
thread. Keys are deterministic, so an engine that resumes after a crash and emits the
same notification again does not send it twice (the outbox ignores a known key). The
payload is ``event.model_dump(mode="json")``; the adapters read it back with
``parse_notification``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from workflows.models import Gate, Ring, Rollout
from workflows.notify._events import (
    ExceptionLapsed,
    GateClosed,
    GateOpened,
    NoteAbout,
    ParentPosted,
    ParentUpdated,
    PlanNote,
    PlanNoteAbout,
    RollbackAlert,
    RollbackAlertUpdate,
    ZoneAlert,
)
from workflows.notify._keys import TOPIC, gate_opened_key, parent_key, rollback_alert_key
from workflows.notify._reader import note_event, parse_notification
from workflows.notify._texts import approval_needed, emergency_label, gate_title

Row = dict[str, Any]  # outbox.enqueue(session, **row)


def _channel(rollout: Rollout) -> str | None:
    slack = rollout.plan_snapshot.get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None


def _row(
    key: str,
    event: BaseModel,
    *,
    rollout_id: int,
    now: dt.datetime,
    parent: str | None = None,
) -> Row:
    row: Row = {
        "key": key,
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout_id,
        "payload": event.model_dump(mode="json"),
    }
    if parent is not None:
        row["parent_key"] = parent
    return row


def rollout_parent(rollout: Rollout, text: str, *, now: dt.datetime) -> Row:
    """The rollout's parent message (posted once; updates reference its key)."""
    event = ParentPosted(
        rollout_id=rollout.id, plan=rollout.plan_name, channel=_channel(rollout), text=text
    )
    return _row(parent_key(rollout.id), event, rollout_id=rollout.id, now=now)


def rollout_note(
    rollout: Rollout,
    suffix: str,
    text: str,
    *,
    now: dt.datetime,
    kind: NoteAbout,
    extra: Mapping[str, Any] | None = None,
) -> Row:
    """A reply in the rollout's thread. ``kind`` names what it is about, ``extra`` the
    fields of its event (validated: a field the note's model lacks is refused)."""
    fields = {
        **(extra or {}),
        "rollout_id": rollout.id,
        "plan": rollout.plan_name,
        "channel": _channel(rollout),
        "text": text,
    }
    event = note_event(kind, fields)
    return _row(
        f"rollout:{rollout.id}:{suffix}",
        event,
        rollout_id=rollout.id,
        now=now,
        parent=parent_key(rollout.id),
    )


def parent_update(rollout: Rollout, text: str, *, now: dt.datetime) -> Row:
    """Update the rollout's parent message in place with its current state."""
    event = ParentUpdated(
        rollout_id=rollout.id,
        plan=rollout.plan_name,
        channel=_channel(rollout),
        state=rollout.state,
        text=text,
        reason=rollout.reason,
    )
    return _row(
        f"rollout:{rollout.id}:parent:update:{uuid.uuid4().hex[:12]}",
        event,
        rollout_id=rollout.id,
        now=now,
        parent=parent_key(rollout.id),
    )


def gate_opened(
    rollout: Rollout,
    gate: Gate,
    ring: Ring,
    *,
    context: Mapping[str, Any],
    text: str | None = None,
) -> GateOpened:
    """A gate's readiness message. ``context`` is ``workflows.reports.gate_context``'s
    (the previous ring's results, the packages, the host count); ``text`` defaults to
    the short "approval needed" sentence."""
    return GateOpened.model_validate(
        {
            **context,
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "text": text
            or emergency_label(rollout) + approval_needed(ring.name, ring.host_count, gate.quorum),
            "gate_id": gate.id,
            "gate_kind": gate.kind,
            "ring": ring.name,
            "patchset_hash": gate.patchset_hash,
            "untested_platforms": gate.untested_platforms,
            "quorum": gate.quorum,
        }
    )


def gate_closed(
    rollout: Rollout, gate: Gate, ring: Ring, *, approvers: list[str], now: dt.datetime
) -> Row:
    """Replace a readiness message's buttons with the decision (approved/rejected/expired)."""
    event = GateClosed(
        rollout_id=rollout.id,
        gate_id=gate.id,
        ring=ring.name,
        channel=_channel(rollout),
        text=gate_title(ring.name, ring.host_count),
        patchset_hash=gate.patchset_hash,
        state=gate.state,
        decided_by=gate.decided_by,
        decided_at=gate.decided_at.isoformat() if gate.decided_at else None,
        reason=gate.reason,
        approvers=approvers,
    )
    return _row(
        f"rollout:{rollout.id}:gate:{gate.id}:closed",
        event,
        rollout_id=rollout.id,
        now=now,
        parent=gate_opened_key(rollout.id, gate.id),
    )


def rollback_alert(
    rollout: Rollout,
    ring: Ring,
    text: str,
    *,
    now: dt.datetime,
    hosts: list[str],
    tickets: list[dict[str, Any]] | None = None,
    key: str | None = None,
) -> Row:
    """An alert for the on-call channel: an automatic rollback started. ``tickets`` are
    the ring's Jira tickets known so far; later keys update the alert
    (``workflows.tickets.refresh_alert``). ``key`` names an alert of another cause (the
    engine giving up on a step); only the ring's rollback alert is updated with keys."""
    event = RollbackAlert.model_validate(
        {
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "ring": ring.name,
            "ring_id": ring.id,
            "hosts": hosts,
            "text": text,
            "tickets": tickets or [],
        }
    )
    return _row(
        key or rollback_alert_key(rollout.id, ring.position),
        event,
        rollout_id=rollout.id,
        now=now,
        parent=parent_key(rollout.id),
    )


def rollback_alert_update(
    alert_key: str, alert: Mapping[str, Any], *, rollout_id: int, now: dt.datetime
) -> Row:
    """Update a posted rollback alert in place (``chat.update``) with its tickets; one row
    per number of tickets known, so a repeat is a no-op. ``alert`` is the alert row's
    payload (either shape) with the tickets now known."""
    posted = parse_notification(alert)
    if not isinstance(posted, RollbackAlert | RollbackAlertUpdate):
        raise ValueError(f"{alert_key} is not a rollback alert but {type(posted).__name__}")
    event = RollbackAlertUpdate.model_validate(posted.model_dump(exclude={"type", "version"}))
    return _row(
        f"{alert_key}:tickets:{len(event.tickets)}",
        event,
        rollout_id=rollout_id,
        now=now,
        parent=alert_key,
    )


def plan_note(
    key: str, *, plan: str, channel: str | None, text: str, about: PlanNoteAbout, now: dt.datetime
) -> Row:
    """A message to a plan's channel from the scheduler (a window that did not start)."""
    event = PlanNote(about=about, plan=plan, channel=channel, text=text)
    return {"key": key, "topic": TOPIC, "at": now, "payload": event.model_dump(mode="json")}


def exception_lapsed(
    *, exception_id: int, channel: str, text: str, ticket_key: str | None, now: dt.datetime
) -> Row:
    """Tell an exception's channel that it expired (its hosts are patched again)."""
    event = ExceptionLapsed(
        exception_id=exception_id, channel=channel, text=text, ticket_key=ticket_key
    )
    return {
        "key": f"exception:{exception_id}:lapsed",
        "topic": TOPIC,
        "at": now,
        "payload": event.model_dump(mode="json"),
    }


def zone_alert(
    *,
    zone: str,
    outage: str,
    back: bool,
    text: str,
    now: dt.datetime,
    waiting_hosts: int = 0,
    wait_seconds: float | None = None,
    down_seconds: float | None = None,
) -> Row:
    """Tell on-call that ``zone`` has no live worker (or, ``back``, has one again). The
    key names the outage, so each outage is posted once, and its recovery once."""
    event = ZoneAlert(
        zone=zone,
        back=back,
        text=text,
        waiting_hosts=waiting_hosts,
        wait_seconds=wait_seconds,
        down_seconds=down_seconds,
    )
    return {
        "key": f"zone:{zone}:{outage}:{'back' if back else 'down'}",
        "topic": TOPIC,
        "at": now,
        "payload": event.model_dump(mode="json"),
    }
