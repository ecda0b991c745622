"""Learning what Jira said: delivered keys copied back into the memory, the host runs
and the exceptions, posted in the rollout thread, and shown on the rings' rollback alerts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.models import (
    HostException,
    HostRun,
    OutboxItem,
    OutboxState,
    Ring,
    Rollout,
    Ticket,
    TicketState,
)
from workflows.notify import (
    NoteAbout,
    left_broken_alert_prefix,
    rollback_alert_key,
    rollback_alert_update,
    rollout_note,
)
from workflows.tickets._change import mirror
from workflows.tickets._text import Cause


async def sync(session: AsyncSession, *, now: dt.datetime) -> bool:
    """Copy delivered ticket keys into the memory, host runs and exceptions, post them in
    the rollout thread, and finish resolutions. Returns True if anything changed."""
    changed = False
    created = await session.execute(
        sa.select(Ticket, OutboxItem.result)
        .join(OutboxItem, OutboxItem.key == Ticket.outbox_key)
        .where(Ticket.key.is_(None), OutboxItem.state == OutboxState.DELIVERED.value)
        .order_by(Ticket.id)
    )
    alert_rings: set[int] = set()
    for ticket, result in created.all():
        key = str((result or {}).get("key") or "")
        if not key:
            continue
        changed = True
        ticket.key = key
        ticket.updated_at = now
        alert_rings.update(
            await session.scalars(
                sa.select(HostRun.ring_id).where(
                    HostRun.ticket_id == ticket.id, HostRun.ticket_key.is_(None)
                )
            )
        )
        await session.execute(
            sa.update(HostRun)
            .where(HostRun.ticket_id == ticket.id, HostRun.ticket_key.is_(None))
            .values(ticket_key=key)
        )
        if ticket.exception_id is not None:
            await session.execute(
                sa.update(HostException)
                .where(HostException.id == ticket.exception_id)
                .values(ticket_key=key)
            )
        await audit.append(
            session,
            kind="ticket.filed",
            at=now,
            actor="patchgate",
            rollout_id=ticket.rollout_id,
            data={
                "ticket_id": ticket.id,
                "key": key,
                "subject": ticket.subject,
                "cause": ticket.cause,
                "found_by": (result or {}).get("found_by"),
            },
        )
        rollout = await session.get(Rollout, ticket.rollout_id) if ticket.rollout_id else None
        if rollout is not None:
            found = (result or {}).get("found_by") == "labels"
            verb = "added to the open ticket" if found else "ticket"
            url = (result or {}).get("url")
            shown = f"<{url}|{key}>" if url else key
            said = f"{ticket.subject}: {ticket.cause}; Jira {verb} {shown}"
            if ticket.cause == Cause.CHANGE.value:
                said = f"Change ticket {shown}: this rollout's story, and votes, in Jira"
            await outbox.enqueue(
                session,
                **rollout_note(
                    rollout,
                    f"ticket:{ticket.id}",
                    said,
                    now=now,
                    kind=NoteAbout.TICKET_FILED,
                    extra={
                        "ticket_key": key,
                        "ticket_url": url,
                        "host": ticket.subject,
                        "cause": ticket.cause,
                    },
                ),
            )
    for ring_id in sorted(alert_rings):
        await refresh_alert(session, ring_id=ring_id, now=now)
    resolved = await session.execute(
        sa.select(Ticket, OutboxItem.result)
        .join(OutboxItem, OutboxItem.key == Ticket.resolve_outbox_key)
        .where(
            Ticket.state == TicketState.RESOLVING.value,
            OutboxItem.state == OutboxState.DELIVERED.value,
        )
        .order_by(Ticket.id)
    )
    for ticket, result in resolved.all():
        changed = True
        ticket.state = TicketState.RESOLVED.value
        ticket.resolved_at = ticket.updated_at = now
        outcome = result or {}
        transitioned = bool(outcome.get("transitioned"))
        key = ticket.key or str(outcome.get("key") or "?")
        await audit.append(
            session,
            kind="ticket.resolved",
            at=now,
            actor="patchgate",
            rollout_id=ticket.resolved_rollout_id,
            data={"ticket_id": ticket.id, "key": key, "transitioned": transitioned},
        )
        rollout = (
            await session.get(Rollout, ticket.resolved_rollout_id)
            if ticket.resolved_rollout_id
            else None
        )
        if rollout is None:
            continue
        if ticket.cause == Cause.CHANGE.value:
            moved = f", moved to {outcome.get('transition')}" if transitioned else ""
            text = f"Change ticket {key} resolved with the outcome{moved}"
        elif transitioned:
            text = f"{ticket.subject}: fixed; {key} moved to {outcome.get('transition')}"
        else:
            text = (
                f"{ticket.subject}: fixed; commented on {key}, but its workflow has no "
                f"transition named {outcome.get('transition')!r}: please close it by hand"
            )
        await outbox.enqueue(
            session,
            **rollout_note(
                rollout,
                f"ticket:{ticket.id}:resolved",
                text,
                now=now,
                kind=NoteAbout.TICKET_RESOLVED,
                extra={"ticket_key": key, "transitioned": transitioned},
            ),
        )
    return await mirror(session, now=now) or changed


# --- the rollback alert's tickets -----------------------------------------------------------


async def ring_tickets(session: AsyncSession, *, ring_id: int) -> list[dict[str, Any]]:
    """The Jira tickets (key known) of a ring's host runs, by host: for its rollback alert."""
    rows = await session.execute(
        sa.select(HostRun.host_name, Ticket.key, Ticket.cause, OutboxItem.result)
        .join(Ticket, Ticket.id == HostRun.ticket_id)
        .outerjoin(OutboxItem, OutboxItem.key == Ticket.outbox_key)
        .where(HostRun.ring_id == ring_id, Ticket.key.is_not(None))
        .order_by(HostRun.host_name, Ticket.id)
    )
    return [
        {"host": host, "key": key, "cause": cause, "url": (result or {}).get("url")}
        for host, key, cause, result in rows.all()
    ]


async def refresh_alert(session: AsyncSession, *, ring_id: int, now: dt.datetime) -> None:
    """Show the ring's ticket keys on its rollback alert, if it has one, and on its
    on-call alerts for hosts a tool left broken: an alert that
    went out before Jira answered would otherwise never name the tickets it is about.

    A pending alert gets the keys in its payload, so a later post carries them (ticket
    first). Unless it was never tried (no attempt recorded, none under way, no error), a
    ``chat.update`` row, child of the alert, follows as well: an earlier attempt may have
    landed without them (its answer lost), or a worker may be posting the old payload right
    now. That row is keyed by the number of tickets shown, so learning the same keys again
    adds nothing. A dead alert is left alone.
    """
    ring = await session.get(Ring, ring_id)
    if ring is None:
        return
    key = rollback_alert_key(ring.rollout_id, ring.position)
    # and the ring's on-call alerts for hosts a tool left broken (issue 20)
    prefix = left_broken_alert_prefix(ring.rollout_id, ring.position)
    alerts = await session.scalars(
        sa.select(OutboxItem)
        .where(
            sa.or_(
                OutboxItem.key == key,
                sa.and_(OutboxItem.key.startswith(prefix), OutboxItem.key.endswith(":broken")),
            )
        )
        .order_by(OutboxItem.id)
        .execution_options(populate_existing=True)
    )
    known = await ring_tickets(session, ring_id=ring_id)
    for alert in list(alerts):
        await _refresh_one(session, alert, known, rollout_id=ring.rollout_id, now=now)


async def _refresh_one(
    session: AsyncSession,
    alert: OutboxItem,
    known: list[dict[str, Any]],
    *,
    rollout_id: int,
    now: dt.datetime,
) -> None:
    if alert.state == OutboxState.DEAD.value:
        return
    if len(known) <= len(alert.payload.get("tickets") or []):
        return
    key = alert.key
    payload = {**alert.payload, "tickets": known}
    pending = sa.and_(OutboxItem.id == alert.id, OutboxItem.state == OutboxState.PENDING.value)
    untried = sa.and_(
        OutboxItem.attempts == 0,
        OutboxItem.lease_until.is_(None),
        OutboxItem.last_error.is_(None),
    )

    async def patch(condition: sa.ColumnElement[bool]) -> bool:
        result = await session.execute(
            sa.update(OutboxItem)
            .where(condition)
            .values(payload=payload)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    if await patch(sa.and_(pending, untried)):
        return  # never tried: it will be posted with the keys
    await patch(pending)
    await outbox.enqueue(
        session, **rollback_alert_update(key, payload, rollout_id=rollout_id, now=now)
    )
