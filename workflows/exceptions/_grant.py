"""Changing exceptions: granting (validated, deduplicated, with its own Jira ticket),
revoking early, and letting them lapse at expiry (ticket comment, channel message)."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, notify, outbox, tickets
from workflows.errors import Conflict, Forbidden, InputError, NotFound
from workflows.exceptions._query import active, packages_fixing, scope, ticket_of
from workflows.gates import Actor, has_power
from workflows.models import HostException, Ticket

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._:-]{0,127}$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


async def problems_of(
    session: AsyncSession,
    *,
    host: str,
    package: str | None,
    cve: str | None,
    owner: str,
    reason: str,
    expires_at: dt.datetime,
    now: dt.datetime,
    max_days: int,
) -> tuple[list[str], str | None]:
    """What is wrong with an exception's fields (empty: nothing), and its package (a CVE
    alone names it through the host's latest assessment)."""
    problems = []
    if not _HOST.fullmatch(host):
        problems.append(f"{host!r} is not a host name")
    if package is not None and not _PACKAGE.fullmatch(package):
        problems.append(f"{package!r} is not a package name")
    if cve is not None and not _CVE.fullmatch(cve):
        problems.append(f"{cve!r} is not a CVE id (CVE-YYYY-NNNN)")
    if cve is not None and package is None and _CVE.fullmatch(cve) and _HOST.fullmatch(host):
        fixing = await packages_fixing(session, host=host, cve=cve)
        if len(fixing) == 1:
            package = fixing[0]
        elif not fixing:
            problems.append(
                f"the latest assessment of {host} lists no fix for {cve} "
                "(`patchgate assess --refresh`), so name the package (--package)"
            )
        else:
            problems.append(
                f"{cve} is fixed on {host} by {len(fixing)} packages ({', '.join(fixing)}): "
                "grant one exception per package (--package)"
            )
    if not owner.strip():
        problems.append("an owner is required")
    elif not _USER.fullmatch(owner.strip()):
        problems.append(f"owner {owner!r} is not a Slack user ID (U…)")
    if not reason.strip():
        problems.append("a reason is required")
    if expires_at.tzinfo is None:
        problems.append("the expiry needs a time zone")
    elif expires_at <= now:
        problems.append("the expiry must be in the future")
    elif expires_at > now + dt.timedelta(days=max_days):
        problems.append(
            f"the expiry may be at most {max_days} days ahead "
            f"(until {now + dt.timedelta(days=max_days):%Y-%m-%d %H:%M} UTC)"
        )
    return problems, package


async def grant(
    session: AsyncSession,
    *,
    actor: Actor,
    operators: frozenset[str],
    host: str,
    owner: str,
    reason: str,
    expires_at: dt.datetime,
    now: dt.datetime,
    max_days: int,
    package: str | None = None,
    cve: str | None = None,
    project: str | None = None,
    issue_type: str | None = None,
    channel: str | None = None,
    ticket: Ticket | None = None,
) -> HostException | Forbidden:
    """Grant an exception. Bad input raises InputError (nothing written); a person
    without operator rights gets Forbidden back, with the refusal audited. ``ticket``: the
    exception's ticket already exists (a request made in Jira, ``tickets.adopt``)."""
    if not has_power(actor, operators):
        why = f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)"
        await audit.append(
            session,
            kind="exception.refused",
            at=now,
            actor=actor.user_id,
            data={"host": host, "package": package, "cve": cve, "why": why},
        )
        return Forbidden(why)
    problems, package = await problems_of(
        session,
        host=host,
        package=package,
        cve=cve,
        owner=owner,
        reason=reason,
        expires_at=expires_at,
        now=now,
        max_days=max_days,
    )
    if problems:
        raise InputError("; ".join(problems))
    clash = await session.scalar(
        sa.select(HostException).where(
            active(now),
            HostException.host_name == host,
            HostException.package.is_(None)
            if package is None
            else HostException.package == package,
        )
    )
    if clash is not None:
        raise Conflict(
            f"exception #{clash.id} for {scope(clash)} is already active "
            f"until {clash.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    exc = await audit.add_audited(
        session,
        HostException(
            host_name=host,
            package=package,
            cve=cve,
            channel=channel,
            reason=reason.strip(),
            owner=owner.strip(),
            created_by=actor.user_id,
            expires_at=expires_at,
            created_at=now,
        ),
        kind="exception.granted",
        at=now,
        actor=actor.user_id,
        data=lambda exc: {
            "exception_id": exc.id,
            "host": host,
            "package": package,
            "cve": cve,
            "owner": exc.owner,
            "reason": exc.reason,
            "expires_at": expires_at.isoformat(),
        },
    )
    what = f"package {package} on {host}" if package else host
    if ticket is not None:
        ticket.exception_id = exc.id
        exc.ticket_key = ticket.key
        return exc
    risk = await tickets.host_risk(session, host=host)
    await tickets.file_or_comment(
        session,
        subject=host,
        cause=tickets.Cause.EXCEPTION,
        summary=f"[PatchGate] {host}: exception for {what} until {expires_at:%Y-%m-%d}"[:255],
        description="\n".join(
            [
                f"Exception #{exc.id}: {what} is left out of patch rollouts.",
                *([f"CVE: {cve}"] if cve else []),
                f"Owner: {exc.owner}",
                f"Granted by: {actor.user_id}",
                f"Reason: {tickets.redact(exc.reason)}",
                f"Expires: {expires_at:%Y-%m-%d %H:%M} UTC",
                *([risk.line()] if risk else []),
            ]
        ),
        severity=tickets.severity_for(tickets.Cause.EXCEPTION, criticality=None),
        risk_score=risk.score if risk else None,
        now=now,
        project=project,
        issue_type=issue_type,
        exception_id=exc.id,
        channel=channel,
    )
    return exc


async def revoke(
    session: AsyncSession,
    *,
    exception_id: int,
    actor: Actor,
    operators: frozenset[str],
    now: dt.datetime,
    reason: str | None = None,
) -> HostException | Forbidden:
    """End an exception early (operators only); comments on its ticket."""
    exc = await session.get(HostException, exception_id, with_for_update=True)
    if exc is None:
        raise NotFound(f"exception {exception_id} does not exist")
    if not has_power(actor, operators):
        why = f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)"
        await audit.append(
            session,
            kind="exception.refused",
            at=now,
            actor=actor.user_id,
            data={"exception_id": exception_id, "why": why},
        )
        return Forbidden(why)
    if exc.revoked_at is not None or exc.lapsed_at is not None or exc.expires_at <= now:
        raise Conflict(f"exception {exception_id} is no longer active")
    exc.revoked_at, exc.revoked_by = now, actor.user_id
    await audit.append(
        session,
        kind="exception.revoked",
        at=now,
        actor=actor.user_id,
        data={"exception_id": exc.id, "reason": reason},
    )
    ticket = await ticket_of(session, exc)
    if ticket is not None:
        await tickets.comment(
            session,
            ticket=ticket,
            body=f"Exception #{exc.id} revoked by {actor.user_id}"
            + (f": {tickets.redact(reason)}" if reason else "")
            + f". {scope(exc)} is patched by rollouts again.",
            now=now,
            suffix="revoked",
        )
    return exc


async def expire_due(session: AsyncSession, *, now: dt.datetime) -> int:
    """Let every exception past its expiry lapse: audit, ticket comment, channel message.

    Called from the engine's tick (and usable by the scheduler); idempotent."""
    due = list(
        await session.scalars(
            sa.select(HostException)
            .where(
                HostException.revoked_at.is_(None),
                HostException.lapsed_at.is_(None),
                HostException.expires_at <= now,
            )
            .order_by(HostException.id)
        )
    )
    for exc in due:
        exc.lapsed_at = now
        await audit.append(
            session,
            kind="exception.lapsed",
            at=now,
            actor="patchgate",
            data={"exception_id": exc.id, "host": exc.host_name, "package": exc.package},
        )
        text = (
            f"Exception #{exc.id} for {scope(exc)} (owner <@{exc.owner}>) expired "
            f"{exc.expires_at:%Y-%m-%d %H:%M} UTC; the next rollouts patch it again."
        )
        ticket = await ticket_of(session, exc)
        if ticket is not None:
            await tickets.comment(session, ticket=ticket, body=text, now=now, suffix="lapsed")
        if exc.channel:
            await outbox.enqueue(
                session,
                **notify.exception_lapsed(
                    exception_id=exc.id,
                    channel=exc.channel,
                    text=text,
                    ticket_key=exc.ticket_key,
                    now=now,
                ),
            )
    return len(due)
