"""Votes cast on a change ticket in Jira: the same rules as a Slack click.

The Jira face (``bot/jira``) parses a webhook delivery or a polled issue into
:class:`TicketVote` and establishes who voted (the Jira user mapped to a Slack user, and
that user's groups, as Slack's middleware does). :func:`vote_from_ticket` then claims the
Jira event's source id (a comment id or a changelog id: the webhook and the poller name
it the same, so it counts once), finds the rollout's open gate and calls
:func:`workflows.gates.decide`, the function every face calls. A refusal is audited (by
``decide``, or here for an unmapped user) and answered on the ticket as a comment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.gates import Actor, Outcome, decide, refuse_without_open_gate
from workflows.models import (
    ChangeRecord,
    Decision,
    Gate,
    JiraEventSeen,
    Ticket,
)
from workflows.states import GateState
from workflows.tickets._rows import comment
from workflows.tickets._text import Cause, redact


@dataclass(frozen=True)
class TicketVote:
    issue_key: str
    source: str  # "comment:<id>" or "changelog:<id>": the Jira event it came from
    jira_user: str  # how Jira names the voter (account id or user name), for messages
    decision: Decision
    shown_hash: str | None  # typed in the comment; None: the hash the ticket shows
    reason: str | None


async def claim(session: AsyncSession, *, source: str, now: dt.datetime) -> bool:
    """Record a Jira event as acted on; False if it was already (a replay, or the other
    path got there first). Race-free: ``INSERT … ON CONFLICT DO NOTHING``."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    new_id = (
        await session.execute(
            insert(JiraEventSeen)
            .values(source=source[:255], seen_at=now)
            .on_conflict_do_nothing(index_elements=[JiraEventSeen.source])
            .returning(JiraEventSeen.id)
        )
    ).scalar_one_or_none()
    return new_id is not None


async def change_ticket(session: AsyncSession, *, issue_key: str) -> ChangeRecord | None:
    return await session.scalar(
        sa.select(ChangeRecord)
        .join(Ticket, Ticket.id == ChangeRecord.ticket_id)
        .where(Ticket.key == issue_key, Ticket.cause == Cause.CHANGE.value)
    )


async def vote_from_ticket(
    session: AsyncSession, *, vote: TicketVote, actor: Actor | None, now: dt.datetime
) -> Outcome | None:
    """Decide one vote from Jira in the caller's transaction. None: not a vote to count
    (not a PatchGate change ticket, or this Jira event was acted on already)."""
    record = await change_ticket(session, issue_key=vote.issue_key)
    if record is None:
        return None
    if not await claim(session, source=vote.source, now=now):
        return None
    ticket = await session.get(Ticket, record.ticket_id)
    assert ticket is not None
    if actor is None:
        why = (
            f"Jira user {vote.jira_user} is not mapped to a Slack user "
            "(PATCHGATE_JIRA_USER_MAP, or a Jira e-mail address Slack knows)"
        )
        await audit.append(
            session,
            kind="gate.refused",
            at=now,
            actor=f"jira:{vote.jira_user}"[:64],
            rollout_id=record.rollout_id,
            data={"gate_id": None, "reason": why, "source": "jira", "jira": vote.source},
        )
        outcome = Outcome(False, why)
    else:
        gate_id = await session.scalar(
            sa.select(Gate.id)
            .where(Gate.rollout_id == record.rollout_id, Gate.state == GateState.OPEN.value)
            .order_by(Gate.id.desc())
            .limit(1)
        )
        if gate_id is None:
            outcome = await refuse_without_open_gate(
                session, rollout_id=record.rollout_id, actor=actor, now=now
            )
        else:
            outcome = await decide(
                session,
                gate_id=gate_id,
                actor=actor,
                decision=vote.decision,
                shown_hash=vote.shown_hash or record.shown_hash,
                reason=vote.reason,
                now=now,
            )
    if not outcome.accepted:
        await comment(
            session,
            ticket=ticket,
            body=f"The {vote.decision.value} by {vote.jira_user} was not counted: "
            f"{redact(outcome.message)}",
            now=now,
            suffix=f"refused:{vote.source}",
        )
    return outcome
