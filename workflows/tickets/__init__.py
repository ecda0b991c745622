"""Which events open, comment on and resolve Jira tickets; PatchGate's ticket memory.

Everything here runs inside the caller's transaction and only writes rows: a
``tickets`` row (the memory) and outbox rows on topic :data:`TOPIC`, which the Jira
deliverer (``integrations/jira.py``) carries out. Rules:

- **One open ticket per subject and cause.** The subject is a host name (or
  ``plan:NAME`` for a rejected gate). A repeat while a ticket is open becomes a comment
  on it. The Jira deliverer falls back to a JQL search on the host and cause labels, so
  a ticket made outside PatchGate's knowledge is commented on too.
- **Causes.** A host ending ``failed`` (patch-failed), ``unhealthy`` (health-failed),
  ``unreachable``; an automatic rollback (``rolled_back`` / ``rollback_failed``) is a
  comment on the host run's ticket when it already has one, otherwise a ticket of its
  own (a healthy host rolled back with its ring); a rejected gate when the plan says
  ``jira.ticket_on_reject``; every exception (one ticket each, never merged).
- **Resolve on fix.** A host ending ``healthy`` resolves its open host tickets: a
  comment, then the configured transition (looked up by name by the deliverer).
- Comment and resolve rows name the create row as their outbox parent, so they wait
  for the key and die with it.
- :func:`sync` (called from the engine's tick) copies delivered keys back into the
  memory, the host runs and the exceptions, and posts the key in the rollout thread.

Outbox rows on this topic carry no ``rollout_id``: tickets are ordered among
themselves by parent keys and never hold up a rollout's Slack thread while Jira is down.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.models import (
    Assessment,
    Host,
    HostException,
    HostRun,
    OutboxItem,
    OutboxState,
    Ring,
    Rollout,
    Ticket,
    TicketState,
)
from workflows.notify import rollback_alert_key, rollback_alert_update, rollout_note
from workflows.states import HostState

TOPIC = "ticket"
OUTPUT_LINES = 20

_SECRET = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|authorization)(\s*[:=]\s*|\s+)(\S+)"
)
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Cause(StrEnum):
    PATCH_FAILED = "patch-failed"
    HEALTH_FAILED = "health-failed"
    UNREACHABLE = "unreachable"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    GATE_REJECTED = "gate-rejected"
    EXCEPTION = "exception"


_HOST_CAUSE = {
    HostState.FAILED.value: Cause.PATCH_FAILED,
    HostState.UNHEALTHY.value: Cause.HEALTH_FAILED,
    HostState.UNREACHABLE.value: Cause.UNREACHABLE,
    HostState.ROLLED_BACK.value: Cause.ROLLED_BACK,
    HostState.ROLLBACK_FAILED.value: Cause.ROLLBACK_FAILED,
}
FIXED_BY_PATCHING = frozenset(
    {
        Cause.PATCH_FAILED,
        Cause.HEALTH_FAILED,
        Cause.UNREACHABLE,
        Cause.ROLLED_BACK,
        Cause.ROLLBACK_FAILED,
    }
)
_SEVERITY = {
    Cause.ROLLBACK_FAILED: "critical",
    Cause.PATCH_FAILED: "high",
    Cause.HEALTH_FAILED: "high",
    Cause.ROLLED_BACK: "high",
    Cause.UNREACHABLE: "medium",
    Cause.GATE_REJECTED: "low",
    Cause.EXCEPTION: "low",
}
_LEVELS = ("low", "medium", "high", "critical")
_WHAT = {
    Cause.PATCH_FAILED: "patch failed",
    Cause.HEALTH_FAILED: "health check failed",
    Cause.UNREACHABLE: "unreachable",
    Cause.ROLLED_BACK: "rolled back",
    Cause.ROLLBACK_FAILED: "automatic rollback failed",
}


# --- labels and text --------------------------------------------------------------------------


def label(prefix: str, value: str) -> str:
    """A Jira label (no spaces; a conservative character set)."""
    return f"{prefix}-{_LABEL_UNSAFE.sub('_', value)}"[:255]


def labels_for(subject: str, cause: str) -> list[str]:
    return ["patchgate", label("pg-host", subject), label("pg-cause", cause)]


def idempotency_label(outbox_key: str) -> str:
    """The label a ticket carries so a retried create can find it."""
    return label("pg-outbox", outbox_key)


def redact(text: str) -> str:
    """Mask values that look like secrets (``password=…``, ``token: …``)."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)


def severity_for(cause: Cause, *, criticality: str | None) -> str:
    """The ticket's severity: from the cause, one level up for a critical host. The
    host's risk score refines it further where the priority is chosen
    (:func:`refine_severity`, applied by the Jira deliverer with its configured thresholds)."""
    level = _LEVELS.index(_SEVERITY[cause])
    if criticality == "critical":
        level = min(level + 1, len(_LEVELS) - 1)
    return _LEVELS[level]


def refine_severity(
    severity: str, *, risk_score: int | None, thresholds: Sequence[int]
) -> tuple[str, int]:
    """The severity raised one level for every threshold the host's risk score (0-100,
    from its latest assessment) reaches, capped at ``critical``; returns it and the number
    of levels raised. No score (host never assessed) or no thresholds: unchanged. The
    score never lowers a severity."""
    if severity not in _LEVELS or risk_score is None:
        return severity, 0
    steps = sum(1 for t in thresholds if risk_score >= t)
    level = min(_LEVELS.index(severity) + steps, len(_LEVELS) - 1)
    return _LEVELS[level], level - _LEVELS.index(severity)


@dataclass(frozen=True)
class HostRisk:
    """A host's risk as its latest assessment put it: the riskiest fix's score and why."""

    score: int
    assessed_at: dt.datetime
    package: str | None
    reasons: tuple[str, ...]

    def line(self) -> str:
        what = f" ({self.package})" if self.package else ""
        why = f": {'; '.join(self.reasons[:4])}" if self.reasons else ""
        return f"Risk score: {self.score}{what}, assessed {self.assessed_at:%Y-%m-%d}{why}"


async def host_risk(session: AsyncSession, *, host: str) -> HostRisk | None:
    """The host's risk from its latest assessment (``assessments`` keeps only the latest
    per host), or None if it was never assessed. A host assessed clean scores 0."""
    row = await session.scalar(
        sa.select(Assessment)
        .where(Assessment.host == host)
        .order_by(Assessment.risk.desc(), Assessment.id)
        .limit(1)
    )
    if row is None:
        return None
    return HostRisk(
        score=int(row.risk),
        assessed_at=row.assessed_at,
        package=row.package or None,
        reasons=tuple(str(r) for r in row.reasons or ()),
    )


def _versions(run: HostRun, packages: Mapping[str, str]) -> list[str]:
    before = run.before_versions or {}
    after = run.after_versions or {}
    lines = []
    for name in sorted(packages):
        old = before.get(name, "?")
        new = after.get(name) if name in after else packages[name]
        lines.append(f"- {name}: {old or 'not installed'} -> {new}")
    return lines


def _summary_packages(packages: Mapping[str, str]) -> str:
    names = sorted(packages)
    if not names:
        return "the patch set"
    first = f"{names[0]} {packages[names[0]]}"
    return first if len(names) == 1 else f"{first} (+{len(names) - 1} more)"


async def host_advisories(
    session: AsyncSession, *, host: str, packages: Sequence[str]
) -> list[str]:
    """Advisory and CVE ids the host's latest assessment gives for these packages."""
    if not packages:
        return []
    ids: list[str] = []
    for advisories, cves in await session.execute(
        sa.select(Assessment.advisories, Assessment.cves)
        .where(Assessment.host == host, Assessment.package.in_(sorted(packages)))
        .order_by(Assessment.package)
    ):
        for item in [*(advisories or []), *(cves or [])]:
            if str(item) not in ids:
                ids.append(str(item))
    return ids


def host_ticket_text(
    *,
    run: HostRun,
    rollout: Rollout,
    ring: Ring | None,
    cause: Cause,
    risk: HostRisk | None = None,
    advisories: Sequence[str] = (),
) -> tuple[str, str]:
    """Summary and description for a host's ticket (secrets masked, output cut short)."""
    packages: Mapping[str, str] = (rollout.patchset or {}).get(run.platform or "", {})
    packages = {k: v for k, v in packages.items() if k not in (run.held_packages or [])}
    summary = f"[PatchGate] {run.host_name}: {_WHAT[cause]} after {_summary_packages(packages)}"
    lines = [
        f"Host: {run.host_name}",
        f"Rollout: #{rollout.id} (plan {rollout.plan_name})",
        f"Ring: {ring.name if ring else '?'}",
        f"State: {run.state}",
    ]
    if run.platform:
        lines.append(f"Platform: {run.platform}")
    if rollout.patchset_hash:
        lines.append(f"Patch set: {rollout.patchset_hash[:12]}")
    if risk is not None:
        lines.append(risk.line())
    if packages:
        lines += ["Packages:", *_versions(run, packages)]
    advisories = list(advisories) or (rollout.plan_snapshot or {}).get("advisories") or []
    if advisories:
        lines.append(f"Advisories: {', '.join(map(str, advisories))}")
    if run.exit_code is not None:
        lines.append(f"Exit code: {run.exit_code}")
    if run.error:
        lines.append(f"Error: {redact(run.error)}")
    if run.output_tail:
        tail = run.output_tail.splitlines()[-OUTPUT_LINES:]
        lines += ["Last lines of output:", "{noformat}", *map(redact, tail), "{noformat}"]
    return summary[:255], "\n".join(lines)


# --- the memory -------------------------------------------------------------------------------


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


async def comment(
    session: AsyncSession, *, ticket: Ticket, body: str, now: dt.datetime, suffix: str
) -> None:
    """A comment on a known ticket, once its create row is delivered."""
    key = f"ticket:{ticket.id}:comment:{suffix}"
    await outbox.enqueue(
        session,
        key=key,
        topic=TOPIC,
        payload={
            "action": "comment",
            "ticket_id": ticket.id,
            "issue_key": ticket.key,
            "body": body,
            "marker": key,
        },
        at=now,
        parent_key=ticket.outbox_key,
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
    await outbox.enqueue(
        session,
        key=key,
        topic=TOPIC,
        payload={
            "action": "resolve",
            "ticket_id": ticket.id,
            "issue_key": ticket.key,
            "body": body,
            "marker": key,
        },
        at=now,
        parent_key=ticket.outbox_key,
    )
    ticket.state = TicketState.RESOLVING.value
    ticket.resolve_outbox_key = key
    ticket.resolved_rollout_id = rollout_id
    ticket.updated_at = now


# --- what the engine calls ----------------------------------------------------------------------


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
    patch = (rollout.patchset or {}).get(run.platform or "", {})
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
                    f"{run.host_name}: {_WHAT[cause]}; added to {ticket.key}",
                    now=now,
                    kind="ticket.commented",
                    extra={"ticket_key": ticket.key, "host": run.host_name},
                ),
            )


async def _resolve_host(session: AsyncSession, *, run: HostRun, now: dt.datetime) -> None:
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


def _channel(rollout: Rollout) -> str | None:
    slack = (rollout.plan_snapshot or {}).get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None


# --- learning what Jira said ---------------------------------------------------------------------


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
            await outbox.enqueue(
                session,
                **rollout_note(
                    rollout,
                    f"ticket:{ticket.id}",
                    f"{ticket.subject}: {ticket.cause}; Jira {verb} {shown}",
                    now=now,
                    kind="ticket.filed",
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
        if transitioned:
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
                kind="ticket.resolved",
                extra={"ticket_key": key, "transitioned": transitioned},
            ),
        )
    return changed


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
    """Show the ring's ticket keys on its rollback alert, if it has one (DESIGN: "an alert
    is updated with the Jira key once known").

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
    alert = await session.scalar(
        sa.select(OutboxItem).where(OutboxItem.key == key).execution_options(populate_existing=True)
    )
    if alert is None or alert.state == OutboxState.DEAD.value:
        return
    known = await ring_tickets(session, ring_id=ring_id)
    if len(known) <= len(alert.payload.get("tickets") or []):
        return
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
        session, **rollback_alert_update(key, payload, rollout_id=ring.rollout_id, now=now)
    )


async def tickets_for(session: AsyncSession, *, subject: str) -> Sequence[Ticket]:
    return list(
        await session.scalars(
            sa.select(Ticket).where(Ticket.subject == subject).order_by(Ticket.id)
        )
    )
