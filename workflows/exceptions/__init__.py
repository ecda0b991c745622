"""Time-boxed exceptions: grant, list, revoke, and let them lapse at expiry.

An exception leaves a host (or one package on it) out of rollouts until it expires.
Granting needs operator rights; owner, reason and an expiry no later than the maximum
(the plan's ``jira.max_exception_days`` or the settings' default) are required. Every
exception gets its own Jira ticket (an outbox row, see :mod:`workflows.tickets`); revoking
it or its lapse at expiry comments on that ticket, and the lapse is announced in the
exception's channel.

Scope: a host-scoped exception makes the engine mark the host ``excepted`` at layout
time; a package-scoped one removes that package from the host's patch set (the host is
still patched with the rest). A CVE may be named as well, as a record of what the
exception is about; a CVE without a package takes the package from the host's latest
assessment (:func:`packages_fixing`), and is refused when that names none or several.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox, tickets
from workflows.errors import Conflict, Forbidden, InputError, NotFound
from workflows.gates import Actor, has_power
from workflows.models import Assessment, HostException, HostRun, Ticket
from workflows.notify import TOPIC as NOTIFY_TOPIC

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._:-]{0,127}$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _active(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        HostException.revoked_at.is_(None),
        HostException.lapsed_at.is_(None),
        HostException.expires_at > now,
    )


def _scope(exc: HostException) -> str:
    scope = exc.host_name + (f" package {exc.package}" if exc.package else "")
    return scope + (f" ({exc.cve})" if exc.cve else "")


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
) -> HostException | Forbidden:
    """Grant an exception. Bad input raises InputError (nothing written); a person
    without operator rights gets Forbidden back, with the refusal audited."""
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
    if problems:
        raise InputError("; ".join(problems))
    clash = await session.scalar(
        sa.select(HostException).where(
            _active(now),
            HostException.host_name == host,
            HostException.package.is_(None)
            if package is None
            else HostException.package == package,
        )
    )
    if clash is not None:
        raise Conflict(
            f"exception #{clash.id} for {_scope(clash)} is already active "
            f"until {clash.expires_at:%Y-%m-%d %H:%M} UTC"
        )
    exc = HostException(
        host_name=host,
        package=package,
        cve=cve,
        channel=channel,
        reason=reason.strip(),
        owner=owner.strip(),
        created_by=actor.user_id,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(exc)
    await session.flush()
    await audit.append(
        session,
        kind="exception.granted",
        at=now,
        actor=actor.user_id,
        data={
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


async def packages_fixing(session: AsyncSession, *, host: str, cve: str) -> list[str]:
    """The packages whose pending fix addresses ``cve`` on ``host``, from its latest
    assessment (``patchgate assess``): how a CVE-scoped exception finds its package."""
    rows = await session.execute(
        sa.select(Assessment.package, Assessment.cves).where(
            Assessment.host == host, Assessment.package != ""
        )
    )
    wanted = cve.upper()
    return sorted({p for p, cves in rows.all() if wanted in {str(c).upper() for c in cves or []}})


async def list_active(session: AsyncSession, *, now: dt.datetime) -> Sequence[HostException]:
    return list(
        await session.scalars(
            sa.select(HostException)
            .where(_active(now))
            .order_by(HostException.expires_at, HostException.id)
        )
    )


async def _ticket(session: AsyncSession, exc: HostException) -> Ticket | None:
    return await session.scalar(
        sa.select(Ticket).where(Ticket.exception_id == exc.id).order_by(Ticket.id).limit(1)
    )


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
    ticket = await _ticket(session, exc)
    if ticket is not None:
        await tickets.comment(
            session,
            ticket=ticket,
            body=f"Exception #{exc.id} revoked by {actor.user_id}"
            + (f": {tickets.redact(reason)}" if reason else "")
            + f". {_scope(exc)} is patched by rollouts again.",
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
            f"Exception #{exc.id} for {_scope(exc)} (owner <@{exc.owner}>) expired "
            f"{exc.expires_at:%Y-%m-%d %H:%M} UTC; the next rollouts patch it again."
        )
        ticket = await _ticket(session, exc)
        if ticket is not None:
            await tickets.comment(session, ticket=ticket, body=text, now=now, suffix="lapsed")
        if exc.channel:
            await outbox.enqueue(
                session,
                key=f"exception:{exc.id}:lapsed",
                topic=NOTIFY_TOPIC,
                payload={
                    "kind": "exception.lapsed",
                    "channel": exc.channel,
                    "text": text,
                    "exception_id": exc.id,
                    "ticket_key": exc.ticket_key,
                },
                at=now,
            )
    return len(due)


async def held_packages(session: AsyncSession, *, now: dt.datetime) -> dict[str, list[str]]:
    """Package-scoped active exceptions: host -> packages left out of its patch set."""
    rows = await session.execute(
        sa.select(HostException.host_name, HostException.package).where(
            _active(now), HostException.package.is_not(None)
        )
    )
    held: dict[str, list[str]] = {}
    for host, package in rows.all():
        held.setdefault(host, []).append(str(package))
    return {h: sorted(p) for h, p in held.items()}


async def excepted_hosts(session: AsyncSession, *, now: dt.datetime) -> set[str]:
    """Hosts with an active host-scoped exception."""
    return set(
        await session.scalars(
            sa.select(HostException.host_name).where(_active(now), HostException.package.is_(None))
        )
    )


def _active_at(at: dt.datetime) -> sa.ColumnElement[bool]:
    """Active at ``at`` (a past moment too): granted by then, not yet ended."""
    return sa.and_(
        HostException.created_at <= at,
        HostException.expires_at > at,
        sa.or_(HostException.revoked_at.is_(None), HostException.revoked_at > at),
        sa.or_(HostException.lapsed_at.is_(None), HostException.lapsed_at > at),
    )


async def applied_to(
    session: AsyncSession, *, rollout_id: int, at: dt.datetime
) -> list[dict[str, Any]]:
    """What exceptions left out of a rollout laid out at ``at``: a host-scoped one for each
    ``excepted`` host run, a package-scoped one for each package held on a host run; with
    owner, reason, expiry and ticket key (None while Jira has not answered). Plain data for
    the rollout's summary; a left-out host whose exception cannot be found is still listed."""
    rows = (
        await session.execute(
            sa.select(HostRun.host_name, HostRun.state, HostRun.held_packages).where(
                HostRun.rollout_id == rollout_id
            )
        )
    ).all()
    wanted: set[tuple[str, str | None]] = set()
    for host, state, held in rows:
        if state == "excepted":
            wanted.add((host, None))
        wanted.update((host, str(p)) for p in held or ())
    if not wanted:
        return []
    found: dict[tuple[str, str | None], HostException] = {}
    for row in await session.scalars(
        sa.select(HostException)
        .where(HostException.host_name.in_(sorted({h for h, _ in wanted})), _active_at(at))
        .order_by(HostException.id)
    ):
        found.setdefault((row.host_name, row.package), row)
    out = []
    for host, package in sorted(wanted, key=lambda hp: (hp[0], hp[1] or "")):
        exc = found.get((host, package))
        out.append(
            {
                "host": host,
                "package": package,
                "exception_id": exc.id if exc else None,
                "cve": exc.cve if exc else None,
                "owner": exc.owner if exc else None,
                "reason": exc.reason if exc else None,
                "expires_at": exc.expires_at.isoformat() if exc else None,
                "ticket_key": exc.ticket_key if exc else None,
            }
        )
    return out
