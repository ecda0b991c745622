"""Exceptions requested in Jira (issue 23): an issue of the configured type whose fields
name the host (and package or CVE), owner, reason and expiry becomes a request; an
operator's approval on the issue (the vote commands or transitions, by the user mapping
of the votes on change tickets) grants it through :func:`grant`, with the same checks as
``patchgate exception add``; the issue is the exception's ticket (``tickets.adopt``), so
its revocation and its lapse at expiry are commented there as for any exception.

Beyond :func:`grant`'s rules: the person who asked may not approve their own request,
and one decision per request (a decided request answers later votes with a refusal).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, tickets
from workflows.errors import Conflict, Forbidden, InputError
from workflows.exceptions._grant import grant, problems_of
from workflows.gates import Actor, Outcome, has_power
from workflows.models import Decision, ExceptionRequest, ExceptionRequestState, Ticket


@dataclass(frozen=True)
class RequestFields:
    host: str | None
    package: str | None
    cve: str | None
    owner: str | None  # a Slack user ID (mapped from a Jira user by the face)
    reason: str | None
    expires_at: dt.datetime | None
    problems: tuple[str, ...] = ()  # what the face could not read (a bad date, …)


async def request_of(session: AsyncSession, *, issue_key: str) -> ExceptionRequest | None:
    return await session.scalar(
        sa.select(ExceptionRequest).where(ExceptionRequest.issue_key == issue_key)
    )


async def open_request(
    session: AsyncSession,
    *,
    issue_key: str,
    fields: RequestFields,
    requested_by: str,
    requester: str | None,
    now: dt.datetime,
    max_days: int,
) -> ExceptionRequest | None:
    """Record a request (None if the issue is known already). Fields that do not make an
    exception leave it ``invalid``, and the issue is told why."""
    if await request_of(session, issue_key=issue_key) is not None:
        return None
    problems = list(fields.problems)
    for name in ("host", "owner", "reason", "expires_at"):
        if not getattr(fields, name):
            problems.append(f"{name.replace('_at', '')} is missing")
    package = fields.package
    if not problems:
        assert fields.host and fields.owner and fields.reason and fields.expires_at
        found, package = await problems_of(
            session,
            host=fields.host,
            package=fields.package,
            cve=fields.cve,
            owner=fields.owner,
            reason=fields.reason,
            expires_at=fields.expires_at,
            now=now,
            max_days=max_days,
        )
        problems += found
    ticket = await tickets.adopt(
        session,
        subject=fields.host or issue_key,
        cause=tickets.Cause.EXCEPTION,
        issue_key=issue_key,
        now=now,
    )
    state = ExceptionRequestState.INVALID if problems else ExceptionRequestState.REQUESTED
    request = await audit.add_audited(
        session,
        ExceptionRequest(
            issue_key=issue_key,
            state=state.value,
            ticket_id=ticket.id,
            host=(fields.host or "")[:255] or None,
            package=package,
            cve=fields.cve,
            owner=fields.owner,
            reason=fields.reason,
            expires_at=fields.expires_at,
            requested_by=requested_by[:255],
            requester=requester,
            problem="; ".join(problems) or None,
            created_at=now,
        ),
        kind="exception.requested",
        at=now,
        actor=requester or f"jira:{requested_by}"[:64],
        data=lambda r: {
            "request_id": r.id,
            "issue_key": issue_key,
            "host": r.host,
            "package": r.package,
            "cve": r.cve,
            "owner": r.owner,
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "problems": problems,
        },
    )
    if problems:
        body = (
            "PatchGate cannot take this exception request: "
            + tickets.redact("; ".join(problems))
            + ". Correct it in a new request."
        )
    else:
        what = f"package {package} on {fields.host}" if package else fields.host
        assert fields.expires_at is not None
        body = (
            f"Exception requested for {what} until {fields.expires_at:%Y-%m-%d %H:%M} UTC "
            f"(owner {fields.owner}). An operator approves it here: comment '%APPROVE%' or "
            "use the approval transition; '%REJECT% <reason>' refuses it."
        )
    await tickets.comment(session, ticket=ticket, body=body, now=now, suffix="requested")
    return request


async def decide_request(
    session: AsyncSession,
    *,
    vote: tickets.TicketVote,
    actor: Actor | None,
    operators: frozenset[str],
    max_days: int,
    now: dt.datetime,
) -> Outcome | None:
    """An operator's decision on a request, from Jira. None: not a request, or this Jira
    event was acted on already."""
    request = await session.scalar(
        sa.select(ExceptionRequest)
        .where(ExceptionRequest.issue_key == vote.issue_key)
        .with_for_update()
    )
    if request is None or not await tickets.claim(session, source=vote.source, now=now):
        return None
    ticket = await session.get(Ticket, request.ticket_id)
    assert ticket is not None
    outcome = await _decide(
        session, request=request, ticket=ticket, vote=vote, actor=actor, operators=operators,
        max_days=max_days, now=now,
    )  # fmt: skip
    if not outcome.accepted:
        await audit.append(
            session,
            kind="exception.refused",
            at=now,
            actor=actor.user_id if actor else f"jira:{vote.jira_user}"[:64],
            data={"issue_key": vote.issue_key, "why": outcome.message, "source": "jira"},
        )
    said = outcome.message if outcome.accepted else f"not counted: {outcome.message}"
    await tickets.comment(
        session,
        ticket=ticket,
        body=f"The {vote.decision.value} by {vote.jira_user}: {tickets.redact(said)}",
        now=now,
        suffix=f"decided:{vote.source}",
    )
    return outcome


async def _decide(
    session: AsyncSession,
    *,
    request: ExceptionRequest,
    ticket: Ticket,
    vote: tickets.TicketVote,
    actor: Actor | None,
    operators: frozenset[str],
    max_days: int,
    now: dt.datetime,
) -> Outcome:
    if actor is None:
        return Outcome(False, f"Jira user {vote.jira_user} is not mapped to a Slack user")
    if request.state != ExceptionRequestState.REQUESTED.value:
        return Outcome(False, f"the request is {request.state}; nothing changed")
    if request.requester is not None and actor.user_id == request.requester:
        return Outcome(False, "the person who asked may not approve their own exception")
    if vote.decision == Decision.REJECT:
        if not has_power(actor, operators):
            return Outcome(False, f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)")
        request.state = ExceptionRequestState.REJECTED.value
        request.decided_by, request.decided_at = actor.user_id, now
        await audit.append(
            session,
            kind="exception.request_rejected",
            at=now,
            actor=actor.user_id,
            data={"request_id": request.id, "issue_key": request.issue_key, "why": vote.reason},
        )
        return Outcome(True, f"rejected by {actor.user_id}: {vote.reason or 'no reason given'}")
    assert request.host and request.owner and request.reason and request.expires_at
    try:
        granted = await grant(
            session,
            actor=actor,
            operators=operators,
            host=request.host,
            owner=request.owner,
            reason=request.reason,
            expires_at=request.expires_at,
            now=now,
            max_days=max_days,
            package=request.package,
            cve=request.cve,
            ticket=ticket,
        )
    except (InputError, Conflict) as exc:
        return Outcome(False, str(exc))
    if isinstance(granted, Forbidden):
        return Outcome(False, str(granted))
    request.state = ExceptionRequestState.GRANTED.value
    request.exception_id = granted.id
    request.decided_by, request.decided_at = actor.user_id, now
    return Outcome(
        True,
        f"granted by {actor.user_id}: exception #{granted.id} until "
        f"{request.expires_at:%Y-%m-%d %H:%M} UTC",
    )
