"""Which events open, comment on and resolve tickets: the rules the engine's calls follow.

- A host ending ``failed`` (patch-failed), ``unhealthy`` (health-failed), ``unreachable``
  files a ticket; an automatic rollback (``rolled_back`` / ``rollback_failed``) is a
  comment on the host run's ticket when it already has one, otherwise a ticket of its own
  (a healthy host rolled back with its ring).
- A rejected gate files one when the plan says ``jira.ticket_on_reject``.
- A host ending ``healthy`` resolves its open host tickets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import outbox
from workflows.models import Host, HostRun, Ring, Rollout, Ticket, TicketState
from workflows.notify import NoteAbout, rollout_note
from workflows.states import HostState
from workflows.tickets._rows import comment, file_or_comment, resolve
from workflows.tickets._sync import refresh_alert
from workflows.tickets._text import (
    WHAT,
    Cause,
    host_advisories,
    host_risk,
    host_ticket_text,
    redact,
    severity_for,
)

_HOST_CAUSE = {
    HostState.FAILED.value: Cause.PATCH_FAILED,
    HostState.UNHEALTHY.value: Cause.HEALTH_FAILED,
    HostState.UNREACHABLE.value: Cause.UNREACHABLE,
    HostState.ROLLED_BACK.value: Cause.ROLLED_BACK,
    HostState.ROLLBACK_FAILED.value: Cause.ROLLBACK_FAILED,
}
_CLEAR = "tickets_none_open"  # session.info: hosts known to have no open host ticket
FIXED_BY_PATCHING = frozenset(
    {
        Cause.PATCH_FAILED,
        Cause.HEALTH_FAILED,
        Cause.UNREACHABLE,
        Cause.ROLLED_BACK,
        Cause.ROLLBACK_FAILED,
    }
)


async def on_host_state(session: AsyncSession, *, run: HostRun, now: dt.datetime) -> None:
    """React to a host run's new state: open/comment on failure, resolve on success."""
    if run.state == HostState.HEALTHY.value:
        await _resolve_host(session, run=run, now=now)
        return
    cause = _HOST_CAUSE.get(run.state)
    if cause is None:
        return
    rollout = await session.get(Rollout, run.rollout_id)
    ring = await session.get(Ring, run.ring_id)
    assert rollout is not None
    if cause in (Cause.ROLLED_BACK, Cause.ROLLBACK_FAILED) and run.ticket_id is not None:
        ticket = await session.get(Ticket, run.ticket_id)
        if ticket is not None and ticket.state == TicketState.OPEN.value:
            what = "done" if cause == Cause.ROLLED_BACK else "FAILED"
            detail = f": {redact(run.error)}" if run.error and what == "FAILED" else ""
            await comment(
                session,
                ticket=ticket,
                body=f"Automatic rollback of {run.host_name} {what} (rollout #{rollout.id})"
                + detail,
                now=now,
                suffix=f"run:{run.id}:{run.state}",
            )
            return
    host = await session.scalar(sa.select(Host).where(Host.name == run.host_name))
    risk = await host_risk(session, host=run.host_name)
    patch = (
        run.packages
        if run.packages is not None
        else (rollout.patchset or {}).get(run.platform or "", {})
    )
    advisories = await host_advisories(
        session,
        host=run.host_name,
        packages=[p for p in patch if p not in (run.held_packages or [])],
    )
    summary, description = host_ticket_text(
        run=run, rollout=rollout, ring=ring, cause=cause, risk=risk, advisories=advisories
    )
    jira = (rollout.plan_snapshot or {}).get("jira") or {}
    ticket, new = await file_or_comment(
        session,
        subject=run.host_name,
        cause=cause,
        summary=summary,
        description=description,
        severity=severity_for(cause, criticality=host.criticality if host else None),
        risk_score=risk.score if risk else None,
        now=now,
        project=jira.get("project"),
        issue_type=jira.get("issue_type"),
        rollout_id=rollout.id,
        host_run_id=run.id,
        channel=_channel(rollout),
    )
    run.ticket_id = ticket.id
    if ticket.key is not None:
        run.ticket_key = ticket.key
        await refresh_alert(session, ring_id=run.ring_id, now=now)
        if not new:
            await outbox.enqueue(
                session,
                **rollout_note(
                    rollout,
                    f"ticket:{ticket.id}:run:{run.id}",
                    f"{run.host_name}: {WHAT[cause]}; added to {ticket.key}",
                    now=now,
                    kind=NoteAbout.TICKET_COMMENTED,
                    extra={"ticket_key": ticket.key, "host": run.host_name},
                ),
            )


async def note_no_open_tickets(session: AsyncSession, *, hosts: Iterable[str]) -> None:
    """Look up, in one query, which of ``hosts`` have no open ticket that patching fixes:
    a host among them settling ``healthy`` later in this transaction then asks nothing
    (the engine's group of host writes). Only the host's own writes open its tickets."""
    names = set(hosts)
    if not names:
        return
    busy = set(
        await session.scalars(
            sa.select(Ticket.subject).where(
                Ticket.subject.in_(names),
                Ticket.state == TicketState.OPEN.value,
                Ticket.cause.in_([c.value for c in FIXED_BY_PATCHING]),
            )
        )
    )
    session.info.setdefault(_CLEAR, set()).update(names - busy)


async def _resolve_host(session: AsyncSession, *, run: HostRun, now: dt.datetime) -> None:
    clear = session.info.get(_CLEAR)
    if clear is not None and run.host_name in clear:
        return  # no open ticket when the transaction began (note_no_open_tickets)
    open_tickets = list(
        await session.scalars(
            sa.select(Ticket).where(
                Ticket.subject == run.host_name,
                Ticket.state == TicketState.OPEN.value,
                Ticket.cause.in_([c.value for c in FIXED_BY_PATCHING]),
            )
        )
    )
    for ticket in open_tickets:
        await resolve(
            session,
            ticket=ticket,
            body=f"Fixed: rollout #{run.rollout_id} patched {run.host_name} and its health "
            "checks passed.",
            now=now,
            rollout_id=run.rollout_id,
        )


async def on_gate_rejected(
    session: AsyncSession, *, rollout: Rollout, reason: str, now: dt.datetime
) -> None:
    """A rejected (or expired) gate opens a ticket when the plan asks for it."""
    jira = (rollout.plan_snapshot or {}).get("jira") or {}
    if not jira.get("ticket_on_reject"):
        return
    summary = f"[PatchGate] plan {rollout.plan_name}: rollout #{rollout.id} stopped at a gate"
    description = "\n".join(
        [
            f"Rollout: #{rollout.id} (plan {rollout.plan_name})",
            f"Requested by: {rollout.requested_by}",
            f"Patch set: {(rollout.patchset_hash or '')[:12]}",
            f"Reason: {redact(reason)}",
        ]
    )
    await file_or_comment(
        session,
        subject=f"plan:{rollout.plan_name}",
        cause=Cause.GATE_REJECTED,
        summary=summary,
        description=description,
        severity=severity_for(Cause.GATE_REJECTED, criticality=None),
        now=now,
        project=jira.get("project"),
        issue_type=jira.get("issue_type"),
        rollout_id=rollout.id,
        channel=_channel(rollout),
    )


async def on_engine_gave_up(
    session: AsyncSession, *, rollout: Rollout, reason: str, now: dt.datetime
) -> None:
    """The engine stopped retrying a step of the rollout: a ticket for the plan."""
    jira = (rollout.plan_snapshot or {}).get("jira") or {}
    await file_or_comment(
        session,
        subject=f"plan:{rollout.plan_name}",
        cause=Cause.PATCH_FAILED,
        summary=f"[PatchGate] plan {rollout.plan_name}: rollout #{rollout.id} stopped, "
        "a step kept failing",
        description="\n".join(
            [
                f"Rollout: #{rollout.id} (plan {rollout.plan_name})",
                f"Requested by: {rollout.requested_by}",
                f"Patch set: {(rollout.patchset_hash or '')[:12]}",
                f"Reason: {redact(reason)}",
            ]
        ),
        severity=severity_for(Cause.PATCH_FAILED, criticality=None),
        now=now,
        project=jira.get("project"),
        issue_type=jira.get("issue_type"),
        rollout_id=rollout.id,
        channel=_channel(rollout),
    )


def _channel(rollout: Rollout) -> str | None:
    slack = (rollout.plan_snapshot or {}).get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None
