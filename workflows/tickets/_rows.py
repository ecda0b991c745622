"""PatchGate's ticket memory (the ``tickets`` rows) and the Jira outbox rows it writes.

One open ticket per subject and cause: a repeat while a ticket is open becomes a comment
on it. Comment and resolve rows name the create row as their outbox parent, so they wait
for the key and die with it. Rows on :data:`TOPIC` carry no ``rollout_id``: tickets are
ordered among themselves by parent keys and never hold up a rollout's Slack thread while
Jira is down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.models import Ticket, TicketState
from workflows.tickets._text import Cause, idempotency_label, labels_for

TOPIC = "ticket"


async def open_ticket(
    session: AsyncSession, *, subject: str, cause: str, exception_id: int | None = None
) -> Ticket | None:
    """The ticket PatchGate knows is open for this subject and cause (exceptions: by id)."""
    query = sa.select(Ticket).where(
        Ticket.subject == subject,
        Ticket.cause == cause,
        Ticket.state == TicketState.OPEN.value,
    )
    if exception_id is not None:
        query = query.where(Ticket.exception_id == exception_id)
    return await session.scalar(query.order_by(Ticket.id.desc()).limit(1))


async def file_or_comment(
    session: AsyncSession,
    *,
    subject: str,
    cause: Cause,
    summary: str,
    description: str,
    severity: str,
    now: dt.datetime,
    project: str | None = None,
    issue_type: str | None = None,
    rollout_id: int | None = None,
    host_run_id: int | None = None,
    exception_id: int | None = None,
    channel: str | None = None,
    risk_score: int | None = None,
) -> tuple[Ticket, bool]:
    """Open a ticket for (subject, cause), or comment on the open one. Returns the ticket
    and whether it is new. Exception tickets are never merged with another."""
    existing = None
    if cause != Cause.EXCEPTION:
        existing = await open_ticket(session, subject=subject, cause=cause)
    if existing is not None:
        body = f"PatchGate saw this again.\n{summary}\n\n{description}"
        origin = f"run:{host_run_id}" if host_run_id else f"at:{now.timestamp():.6f}"
        await comment(session, ticket=existing, body=body, now=now, suffix=origin)
        existing.updated_at = now
        return existing, False
    ticket = Ticket(
        subject=subject,
        cause=cause.value,
        state=TicketState.OPEN.value,
        outbox_key="pending",
        rollout_id=rollout_id,
        host_run_id=host_run_id,
        exception_id=exception_id,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    ticket.outbox_key = f"ticket:{ticket.id}:create"
    payload: dict[str, Any] = {
        "action": "create",
        "ticket_id": ticket.id,
        "subject": subject,
        "cause": cause.value,
        "summary": summary,
        "description": description,
        "severity": severity,
        "risk_score": risk_score,
        "project": project,
        "issue_type": issue_type,
        "labels": labels_for(subject, cause.value),
        "idempotency_label": idempotency_label(ticket.outbox_key),
        "dedupe": cause != Cause.EXCEPTION,
        "rollout_id": rollout_id,
        "channel": channel,
    }
    await outbox.enqueue(session, key=ticket.outbox_key, topic=TOPIC, payload=payload, at=now)
    await audit.append(
        session,
        kind="ticket.requested",
        at=now,
        actor="patchgate",
        rollout_id=rollout_id,
        data={"ticket_id": ticket.id, "subject": subject, "cause": cause.value},
    )
    return ticket, True


async def adopt(
    session: AsyncSession,
    *,
    subject: str,
    cause: Cause,
    issue_key: str,
    now: dt.datetime,
    exception_id: int | None = None,
) -> Ticket:
    """Remember an issue made in Jira (an exception request) as a ticket, so comments and
    the exception's ticket key work as for the tickets PatchGate files. Its outbox row
    (action ``adopt``) only checks the issue exists and answers its key."""
    ticket = Ticket(
        subject=subject,
        cause=cause.value,
        state=TicketState.OPEN.value,
        outbox_key="pending",
        exception_id=exception_id,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    await session.flush()
    ticket.outbox_key = f"ticket:{ticket.id}:adopt"
    await outbox.enqueue(
        session,
        key=ticket.outbox_key,
        topic=TOPIC,
        payload={"action": "adopt", "ticket_id": ticket.id, "issue_key": issue_key},
        at=now,
    )
    return ticket


async def _follow_up(
    session: AsyncSession, *, ticket: Ticket, action: str, key: str, body: str, now: dt.datetime
) -> None:
    """An outbox row acting on a filed ticket: a child of its create row, so it waits for
    the issue key and dies with the create row. ``key`` doubles as the comment's marker, by
    which the deliverer finds a comment an earlier attempt already left."""
    await outbox.enqueue(
        session,
        key=key,
        topic=TOPIC,
        payload={
            "action": action,
            "ticket_id": ticket.id,
            "issue_key": ticket.key,
            "body": body,
            "marker": key,
        },
        at=now,
        parent_key=ticket.outbox_key,
    )


async def comment(
    session: AsyncSession, *, ticket: Ticket, body: str, now: dt.datetime, suffix: str
) -> None:
    """A comment on a known ticket, once its create row is delivered."""
    await _follow_up(
        session,
        ticket=ticket,
        action="comment",
        key=f"ticket:{ticket.id}:comment:{suffix}",
        body=body,
        now=now,
    )


async def resolve(
    session: AsyncSession,
    *,
    ticket: Ticket,
    body: str,
    now: dt.datetime,
    rollout_id: int | None = None,
) -> None:
    """Comment and move the ticket through the configured transition (by the deliverer)."""
    key = f"ticket:{ticket.id}:resolve"
    await _follow_up(session, ticket=ticket, action="resolve", key=key, body=body, now=now)
    ticket.state = TicketState.RESOLVING.value
    ticket.resolve_outbox_key = key
    ticket.resolved_rollout_id = rollout_id
    ticket.updated_at = now


async def tickets_for(session: AsyncSession, *, subject: str) -> Sequence[Ticket]:
    return list(
        await session.scalars(
            sa.select(Ticket).where(Ticket.subject == subject).order_by(Ticket.id)
        )
    )
