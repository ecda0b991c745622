"""The typed notifications: builders make versioned ``type`` payloads and keep their keys,
refuse what they do not know, and ``parse_notification`` reads both shapes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.slack import messages
from workflows import notify
from workflows.models import Gate, Ring, Rollout
from workflows.notify import (
    SCHEMA_VERSION,
    BatchDone,
    ExceptionLapsed,
    GateClosed,
    GateOpened,
    GateReminder,
    NoteAbout,
    ParentPosted,
    ParentUpdated,
    PatchSetPinned,
    PlanNote,
    RollbackAlert,
    RollbackAlertUpdate,
    RolloutSummary,
    ThreadNote,
    TicketNote,
    parse_notification,
)

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
OLD_ROWS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "notify" / "old_shape_rows.json").read_text()
)


def rollout() -> Rollout:
    return Rollout(
        id=41,
        plan_name="weekly",
        plan_snapshot={"slack": {"channel": "C0PATCHES"}},
        state="running",
        reason=None,
        requested_by="U0REQ",
    )


def ring() -> Ring:
    return Ring(id=11, rollout_id=41, name="prod", position=1, host_count=3)


def gate() -> Gate:
    return Gate(
        id=7,
        rollout_id=41,
        ring_id=11,
        kind="approval",
        quorum=1,
        patchset_hash="ab" * 32,
        untested_platforms=["rocky-9"],
        state="approved",
        decided_by="U0APP1",
        decided_at=NOW,
        reason=None,
    )


def test_builders_keep_keys_and_write_typed_versioned_payloads() -> None:
    r = rollout()
    parent = notify.rollout_parent(r, "weekly", now=NOW)
    assert (parent["key"], parent["topic"], parent.get("parent_key")) == (
        "rollout:41:parent",
        "notify",
        None,
    )
    assert parent["payload"]["type"] == "rollout.parent"
    assert parent["payload"]["version"] == SCHEMA_VERSION
    note = notify.rollout_note(
        r, "ring:1:started", "Ring prod started", now=NOW, kind="ring.started"
    )
    assert (note["key"], note["parent_key"]) == ("rollout:41:ring:1:started", "rollout:41:parent")
    event = parse_notification(note["payload"])
    assert isinstance(event, ThreadNote) and event.about is NoteAbout.RING_STARTED
    assert event.channel == "C0PATCHES" and event.text == "Ring prod started"
    update = notify.parent_update(r, "weekly", now=NOW)
    assert update["key"].startswith("rollout:41:parent:update:")
    assert isinstance(parse_notification(update["payload"]), ParentUpdated)
    closed = notify.gate_closed(r, gate(), ring(), approvers=["U0APP1"], now=NOW)
    assert (closed["key"], closed["parent_key"]) == (
        "rollout:41:gate:7:closed",
        notify.gate_opened_key(41, 7),
    )
    event = parse_notification(closed["payload"])
    assert isinstance(event, GateClosed) and event.text == "Gate for ring prod (3 hosts)"
    alert = notify.rollback_alert(r, ring(), "rolled back", now=NOW, hosts=["dev-02"])
    assert alert["key"] == notify.rollback_alert_key(41, 1) == "rollout:41:alert:ring:1:rollback"
    tickets = [{"host": "dev-02", "key": "OPS-9", "cause": "apply failed", "url": None}]
    again = notify.rollback_alert_update(
        alert["key"], {**alert["payload"], "tickets": tickets}, rollout_id=41, now=NOW
    )
    assert (again["key"], again["parent_key"]) == (f"{alert['key']}:tickets:1", alert["key"])
    event = parse_notification(again["payload"])
    assert isinstance(event, RollbackAlertUpdate) and event.tickets[0].key == "OPS-9"
    json.dumps([parent, note, update, closed, alert, again], default=str)  # JSON-ready


@pytest.mark.parametrize(
    ("kind", "extra", "model"),
    [
        ("rollout.pinned", {"patchset_hash": "ab" * 32}, PatchSetPinned),
        ("batch.done", {"failures": 2}, BatchDone),
        ("gate.reminder", {"gate_id": 7, "percent": 50}, GateReminder),
        ("ticket.filed", {"ticket_key": "OPS-9", "ticket_url": None, "host": "h"}, TicketNote),
        ("ticket.resolved", {"ticket_key": "OPS-9", "transitioned": True}, TicketNote),
        ("rollout.succeeded", {"summary": {"counts": {"healthy": 2}}}, RolloutSummary),
        ("gate.opened", {"gate_id": 7, "packages": [{"name": "a", "to": "2"}]}, GateOpened),
        ("rollout.frozen", None, ThreadNote),
    ],
)
def test_a_note_kind_and_its_extra_become_the_matching_event(
    kind: str, extra: dict[str, Any] | None, model: type
) -> None:
    row = notify.rollout_note(rollout(), "x", "text", now=NOW, kind=kind, extra=extra)
    event = parse_notification(row["payload"])
    assert isinstance(event, model) and event.about == NoteAbout(kind)


def test_an_unknown_kind_or_field_is_refused_loudly() -> None:
    with pytest.raises(ValueError, match=r"unknown notification kind 'rollout\.bogus'"):
        notify.rollout_note(rollout(), "x", "t", now=NOW, kind="rollout.bogus")
    with pytest.raises(ValidationError):
        notify.rollout_note(rollout(), "x", "t", now=NOW, kind="ring.done", extra={"oops": 1})
    with pytest.raises(ValueError, match="neither"):
        parse_notification({"text": "no type"})


@pytest.mark.parametrize("row", OLD_ROWS, ids=[r["payload"]["kind"] for r in OLD_ROWS])
def test_old_payloads_are_read_into_the_typed_events(row: dict[str, Any]) -> None:
    expected = {
        "rollout.parent": ParentPosted,
        "rollout.parent.update": ParentUpdated,
        "gate.opened": GateOpened,
        "gate.closed": GateClosed,
        "rollout.alert": RollbackAlert,
        "rollout.alert.update": RollbackAlertUpdate,
        "exception.lapsed": ExceptionLapsed,
        "schedule.window_missed": PlanNote,
        "rollout.pinned": PatchSetPinned,
        "batch.done": BatchDone,
        "gate.reminder": GateReminder,
        "ticket.filed": TicketNote,
        "ticket.resolved": TicketNote,
        "rollout.succeeded": RolloutSummary,
    }.get(row["payload"]["kind"], ThreadNote)
    event = parse_notification(row["payload"])
    assert type(event) is expected
    assert parse_notification(event.model_dump(mode="json")) == event, "the new shape round-trips"
    if not isinstance(event, RollbackAlert | RollbackAlertUpdate):
        assert messages.render(event) == row["message"]


def test_the_readiness_message_builder_reads_the_gate_and_its_context() -> None:
    context = {
        "previous_ring": {"ring": "canary", "counts": {"healthy": 2}, "health": None},
        "packages": [{"name": "openssl", "from": "1", "to": "2"}],
        "host_count": 3,
    }
    event = notify.gate_opened(rollout(), gate(), ring(), context=context)
    assert event.text == "Approval needed before ring prod (3 hosts), quorum 1"
    assert event.packages is not None and event.packages[0].from_ == "1"
    assert event.model_dump(mode="json")["packages"][0]["from"] == "1"
    assert event.untested_platforms == ["rocky-9"] and event.quorum == 1


def test_a_row_of_a_later_schema_version_is_refused_not_misread() -> None:
    row = notify.rollout_parent(rollout(), "weekly", now=NOW)
    with pytest.raises(ValidationError):
        parse_notification({**row["payload"], "version": SCHEMA_VERSION + 1})
