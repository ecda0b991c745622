"""A rollout's Jira change ticket (issue 23): filed once the patch set is pinned, then told
the rollout's story from its audit trail, and resolved with the outcome.

The ticket is a ``tickets`` row of cause ``change`` and subject ``rollout:N`` (so the
outbox deliverer, its idempotent create and the key sync are the exception tickets'),
and a ``change_records`` row: how far the audit trail was mirrored (``cursor``, an event
id) and which gate and patch-set hash the ticket last showed (a vote by transition is
bound to that hash). :func:`mirror` runs in :func:`workflows.tickets.sync`, on every
engine tick, so the engine needs no calls of its own: rings starting, gates opening,
votes (from Slack, the CLI or Jira), gates deciding, hosts failing, their tickets being
filed and the rollout ending all become comments on the change ticket, one comment per
pass; the end resolves it with the outcome.

Texts may name the vote commands as ``%APPROVE%`` and ``%REJECT%``: the Jira deliverer
puts the configured commands there (the domain does not read settings).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.hostos import patch_label
from workflows.models import (
    ChangeRecord,
    Event,
    HostRun,
    OutboxItem,
    OutboxState,
    Ring,
    Rollout,
    Ticket,
    TicketState,
)
from workflows.notify import parent_key
from workflows.states import ROLLOUT_SETTLED_VALUES
from workflows.tickets._rows import comment, file_or_comment, resolve
from workflows.tickets._text import Cause, redact

APPROVE_COMMAND = "%APPROVE%"
REJECT_COMMAND = "%REJECT%"
RECENT = dt.timedelta(days=1)  # a rollout that settled this recently still gets its ticket
MAX_PACKAGES = 60  # package lines in a description (the rest are counted)
MAX_HOSTS = 40  # host names per ring in a description
_FAILED_HOST = frozenset({"failed", "unhealthy", "unreachable", "rolled_back", "rollback_failed"})


def subject_of(rollout_id: int) -> str:
    return f"rollout:{rollout_id}"


def change_spec(rollout: Rollout) -> dict[str, Any] | None:
    """The plan's ``change:`` section, when it asks for a ticket."""
    spec = (rollout.plan_snapshot or {}).get("change")
    if isinstance(spec, dict) and spec.get("ticket", True):
        return spec
    return None


async def mirror(session: AsyncSession, *, now: dt.datetime) -> bool:
    """File missing change tickets and tell open ones what happened since. True if any
    row was written."""
    changed = await _file_missing(session, now=now)
    records = (
        await session.execute(
            sa.select(ChangeRecord, Ticket)
            .join(Ticket, Ticket.id == ChangeRecord.ticket_id)
            .where(Ticket.state == TicketState.OPEN.value)
            .order_by(ChangeRecord.rollout_id)
        )
    ).all()
    for record, ticket in records:
        changed = await _tell(session, record=record, ticket=ticket, now=now) or changed
    return changed


async def _file_missing(session: AsyncSession, *, now: dt.datetime) -> bool:
    candidates = await session.scalars(
        sa.select(Rollout)
        .outerjoin(ChangeRecord, ChangeRecord.rollout_id == Rollout.id)
        .where(
            ChangeRecord.rollout_id.is_(None),
            Rollout.patchset_hash.is_not(None),
            sa.or_(
                Rollout.state.not_in(ROLLOUT_SETTLED_VALUES),
                Rollout.finished_at >= now - RECENT,
            ),
        )
        .order_by(Rollout.id)
    )
    filed = False
    for rollout in list(candidates):
        spec = change_spec(rollout)
        if spec is None:
            continue
        jira = (rollout.plan_snapshot or {}).get("jira") or {}
        summary, description = await describe(session, rollout=rollout)
        ticket, _ = await file_or_comment(
            session,
            subject=subject_of(rollout.id),
            cause=Cause.CHANGE,
            summary=summary,
            description=description,
            severity="low",
            now=now,
            project=spec.get("project") or jira.get("project"),
            issue_type=spec.get("issue_type"),
            rollout_id=rollout.id,
            channel=_channel(rollout),
        )
        last = await session.scalar(
            sa.select(sa.func.max(Event.id)).where(Event.rollout_id == rollout.id)
        )
        session.add(
            ChangeRecord(
                rollout_id=rollout.id, ticket_id=ticket.id, cursor=last or 0, created_at=now
            )
        )
        filed = True
    return filed


async def describe(session: AsyncSession, *, rollout: Rollout) -> tuple[str, str]:
    """The change ticket's summary and description: the pinned patch set (packages,
    versions, hash), the rings with their hosts and gates, the window, how to vote."""
    plan = rollout.plan_snapshot or {}
    digest = rollout.patchset_hash or ""
    summary = f"[PatchGate] change: plan {rollout.plan_name}, rollout #{rollout.id}"
    lines = [
        f"Rollout #{rollout.id} of plan {rollout.plan_name}, requested by "
        f"{rollout.requested_by} ({rollout.source}).",
        f"Patch set (pinned): {digest}",
    ]
    if rollout.emergency:
        lines.append(f"Emergency rollout for {rollout.emergency_cve or 'an urgent fix'}.")
    shown = 0
    total = sum(len(p or {}) for p in (rollout.patchset or {}).values())
    for platform, packages in sorted((rollout.patchset or {}).items()):
        lines.append(f"Platform {platform}:")
        updates = (rollout.patchset_updates or {}).get(platform, {})
        for name, version in sorted((packages or {}).items()):
            if shown < MAX_PACKAGES:
                known = updates.get(name)  # a KB: its number and title (issue 21)
                lines.append(
                    f"  {patch_label(name, version, known)}" if known else f"  {name} {version}"
                )
            shown += 1
    if total > MAX_PACKAGES:
        lines.append(f"  ... and {total - MAX_PACKAGES} more packages")
    rings = list(
        await session.scalars(
            sa.select(Ring).where(Ring.rollout_id == rollout.id).order_by(Ring.position)
        )
    )
    specs = plan.get("rings") or []
    lines.append("Rings:")
    for ring in rings:
        hosts = list(
            await session.scalars(
                sa.select(HostRun.host_name)
                .where(HostRun.ring_id == ring.id)
                .order_by(HostRun.host_name)
            )
        )
        gate = (specs[ring.position].get("gate") if ring.position < len(specs) else None) or {}
        kind = gate.get("type", "none") if isinstance(gate, dict) else "none"
        more = f" (+{len(hosts) - MAX_HOSTS} more)" if len(hosts) > MAX_HOSTS else ""
        lines.append(
            f"  {ring.position + 1}. {ring.name}: {len(hosts)} host(s), gate {kind}: "
            f"{', '.join(hosts[:MAX_HOSTS]) or '-'}{more}"
        )
    schedule = plan.get("schedule")
    if isinstance(schedule, dict):
        lines.append(f"Window: {_window_text(schedule)}")
    if rollout.window_end is not None:
        lines.append(f"This run's window ends at {rollout.window_end:%Y-%m-%d %H:%M} UTC.")
    lines += [
        "",
        "Approvers may vote on this ticket when a gate is open: comment "
        f"'{APPROVE_COMMAND} <patch-set hash>' or '{REJECT_COMMAND} <reason>', or use the "
        "workflow's approval transition. The same rules apply as in Slack.",
    ]
    return summary, "\n".join(lines)


def _window_text(schedule: dict[str, Any]) -> str:
    parts = [str(schedule[k]) for k in ("cron", "timezone", "duration") if schedule.get(k)]
    return ", ".join(parts) if parts else json.dumps(schedule, sort_keys=True)[:300]


def _channel(rollout: Rollout) -> str | None:
    slack = (rollout.plan_snapshot or {}).get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None


async def _tell(
    session: AsyncSession, *, record: ChangeRecord, ticket: Ticket, now: dt.datetime
) -> bool:
    changed = await _link_thread(session, record=record, ticket=ticket, now=now)
    events = list(
        await session.scalars(
            sa.select(Event)
            .where(Event.rollout_id == record.rollout_id, Event.id > record.cursor)
            .order_by(Event.id)
        )
    )
    if not events:
        return changed
    lines: list[str] = []
    ended: str | None = None
    for event in events:
        body = json.loads(event.body)
        data = body.get("data") or {}
        line = _line(event.kind, data, actor=body.get("actor"), record=record)
        if line:
            lines.append(f"{event.at:%Y-%m-%d %H:%M:%S} UTC: {line}")
        if event.kind == "rollout.state" and data.get("to") in ROLLOUT_SETTLED_VALUES:
            ended = str(data.get("to"))
    record.cursor = events[-1].id
    if ended is not None:
        lines.append(f"Outcome: the rollout {ended}.")
        rollout = await session.get(Rollout, record.rollout_id)
        await resolve(
            session,
            ticket=ticket,
            body="\n".join(lines),
            now=now,
            rollout_id=rollout.id if rollout else None,
        )
    elif lines:
        await comment(
            session, ticket=ticket, body="\n".join(lines), now=now, suffix=f"ev:{record.cursor}"
        )
    return True


async def _link_thread(
    session: AsyncSession, *, record: ChangeRecord, ticket: Ticket, now: dt.datetime
) -> bool:
    """Once the rollout's Slack message is posted, its link goes on the ticket (once: the
    comment's outbox key is fixed)."""
    parent = await session.scalar(
        sa.select(OutboxItem).where(
            OutboxItem.key == parent_key(record.rollout_id),
            OutboxItem.state == OutboxState.DELIVERED.value,
        )
    )
    result = (parent.result or {}) if parent is not None else {}
    channel, ts = result.get("channel"), result.get("ts")
    if not channel or not ts:
        return False
    link = f"https://slack.com/archives/{channel}/p{str(ts).replace('.', '')}"
    key = f"ticket:{ticket.id}:comment:thread"
    if await session.scalar(sa.select(OutboxItem.id).where(OutboxItem.key == key)) is not None:
        return False
    await comment(session, ticket=ticket, body=f"Slack thread: {link}", now=now, suffix="thread")
    return True


def _line(
    kind: str, data: dict[str, Any], *, actor: str | None, record: ChangeRecord
) -> str | None:
    """What an audit event says on the change ticket (None: not told)."""
    if kind == "rollout.state":
        why = f" ({redact(str(data['reason']))})" if data.get("reason") else ""
        return f"rollout {data.get('from')} -> {data.get('to')}{why}"
    if kind == "ring.state":
        return f"ring {data.get('ring')}: {data.get('from')} -> {data.get('to')}"
    if kind == "gate.opened":
        digest = str(data.get("patchset_hash") or "")
        record.shown_hash = digest or None
        record.shown_gate_id = int(data["gate_id"]) if data.get("gate_id") else None
        if data.get("kind") != "approval":
            return f"automatic gate before ring {data.get('ring')} opened (soak)"
        untested = data.get("untested_platforms") or []
        warn = f"; platforms no earlier ring tested: {', '.join(untested)}" if untested else ""
        return (
            f"gate before ring {data.get('ring')} opened: approval needed "
            f"(quorum {data.get('quorum')}) for patch set {digest}{warn}. "
            f"Vote: '{APPROVE_COMMAND} {digest[:12]}' or '{REJECT_COMMAND} <reason>'"
        )
    if kind == "gate.vote":
        said = f": {redact(str(data['reason']))}" if data.get("reason") else ""
        return (
            f"{actor} voted {data.get('decision')} on ring {data.get('ring')} in "
            f"{data.get('source')} (patch set {str(data.get('patchset_hash') or '')[:12]}){said}"
        )
    if kind == "gate.state":
        why = f" ({redact(str(data['reason']))})" if data.get("reason") else ""
        return (
            f"gate before ring {data.get('ring')}: {data.get('from')} -> {data.get('to')} "
            f"by {data.get('by')}{why}"
        )
    if kind == "host.state" and data.get("to") in _FAILED_HOST:
        error = f": {redact(str(data['error']))[:300]}" if data.get("error") else ""
        return f"host {data.get('host')}: {data.get('to')}{error}"
    if kind == "ticket.filed" and data.get("cause") != Cause.CHANGE.value:
        return f"{data.get('subject')}: {data.get('cause')} ticket {data.get('key')}"
    return None
