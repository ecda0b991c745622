"""The notifications the domain emits, as outbox rows.

Each rollout has one parent message (key ``rollout:ID:parent``); progress goes to its
thread. Keys are deterministic, so an engine that resumes after a crash and emits the
same notification again does not send it twice (the outbox ignores a known key).
The payload is plain data; the Slack adapter renders it, the logging deliverer logs
``text``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Gate, HostRun, Ring, Rollout

TOPIC = "notify"


def parent_key(rollout_id: int) -> str:
    return f"rollout:{rollout_id}:parent"


def _channel(rollout: Rollout) -> str | None:
    slack = rollout.plan_snapshot.get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None


def rollout_parent(rollout: Rollout, text: str, *, now: dt.datetime) -> dict[str, Any]:
    """The rollout's parent message (posted once; updates reference its key)."""
    return {
        "key": parent_key(rollout.id),
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "payload": {
            "kind": "rollout.parent",
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "text": text,
        },
    }


def rollout_note(
    rollout: Rollout,
    suffix: str,
    text: str,
    *,
    now: dt.datetime,
    kind: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A reply in the rollout's thread."""
    payload: dict[str, Any] = {
        "kind": kind,
        "rollout_id": rollout.id,
        "plan": rollout.plan_name,
        "channel": _channel(rollout),
        "text": text,
        "thread": True,
    }
    if extra:
        payload.update(extra)
    return {
        "key": f"rollout:{rollout.id}:{suffix}",
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "parent_key": parent_key(rollout.id),
        "payload": payload,
    }


# --- richer payloads for the Slack face (plain data; the Slack adapter renders them) ------


def parent_update(rollout: Rollout, text: str, *, now: dt.datetime) -> dict[str, Any]:
    """Update the rollout's parent message in place with its current state."""
    return {
        "key": f"rollout:{rollout.id}:parent:update:{uuid.uuid4().hex[:12]}",
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "parent_key": parent_key(rollout.id),
        "payload": {
            "kind": "rollout.parent.update",
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "state": rollout.state,
            "text": text,
            "reason": rollout.reason,
        },
    }


def gate_opened_key(rollout_id: int, gate_id: int) -> str:
    return f"rollout:{rollout_id}:gate:{gate_id}:opened"


async def ring_results(session: AsyncSession, ring: Ring) -> dict[str, Any]:
    """What a ring did: host counts by state, health checks passed, duration."""
    rows = await session.execute(
        sa.select(HostRun.state, sa.func.count())
        .where(HostRun.ring_id == ring.id)
        .group_by(HostRun.state)
    )
    counts = {state: n for state, n in rows.all()}
    health_ok = health_total = 0
    for checks in await session.scalars(
        sa.select(HostRun.health).where(HostRun.ring_id == ring.id, HostRun.health.is_not(None))
    ):
        for check in checks or []:
            health_total += 1
            health_ok += bool(isinstance(check, dict) and check.get("ok"))
    duration = None
    if ring.started_at is not None and ring.finished_at is not None:
        duration = (ring.finished_at - ring.started_at).total_seconds()
    return {
        "ring": ring.name,
        "counts": counts,
        "health": {"ok": health_ok, "total": health_total},
        "duration_seconds": duration,
    }


async def package_changes(
    session: AsyncSession, rollout: Rollout, *, ring_id: int | None = None
) -> list[dict[str, Any]]:
    """Packages of the pinned set with the versions they move from (as seen on hosts)."""
    wanted: dict[str, set[str]] = {}
    for packages in (rollout.patchset or {}).values():
        for name, version in packages.items():
            wanted.setdefault(name, set()).add(str(version))
    before: dict[str, set[str]] = {}
    query = sa.select(HostRun.before_versions).where(
        HostRun.rollout_id == rollout.id, HostRun.before_versions.is_not(None)
    )
    if ring_id is not None:
        query = query.where(HostRun.ring_id == ring_id)
    for versions in await session.scalars(query):
        for name, version in (versions or {}).items():
            if name in wanted and version is not None:
                before.setdefault(name, set()).add(str(version))
    return [
        {
            "name": name,
            "from": ", ".join(sorted(before.get(name, set()))) or None,
            "to": ", ".join(sorted(wanted[name])),
        }
        for name in sorted(wanted)
    ]


async def gate_context(session: AsyncSession, rollout: Rollout, ring: Ring) -> dict[str, Any]:
    """Extra data for a readiness message: the previous ring's results and the packages."""
    previous = await session.scalar(
        sa.select(Ring).where(Ring.rollout_id == rollout.id, Ring.position == ring.position - 1)
    )
    return {
        "previous_ring": await ring_results(session, previous) if previous else None,
        "packages": await package_changes(session, rollout),
        "host_count": ring.host_count,
    }


def gate_closed(
    rollout: Rollout, gate: Gate, ring: Ring, *, approvers: list[str], now: dt.datetime
) -> dict[str, Any]:
    """Replace a readiness message's buttons with the decision (approved/rejected/expired)."""
    return {
        "key": f"rollout:{rollout.id}:gate:{gate.id}:closed",
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "parent_key": gate_opened_key(rollout.id, gate.id),
        "payload": {
            "kind": "gate.closed",
            "rollout_id": rollout.id,
            "gate_id": gate.id,
            "ring": ring.name,
            "channel": _channel(rollout),
            "text": f"Gate for ring {ring.name} ({ring.host_count} hosts)",
            "patchset_hash": gate.patchset_hash,
            "state": gate.state,
            "decided_by": gate.decided_by,
            "decided_at": gate.decided_at.isoformat() if gate.decided_at else None,
            "reason": gate.reason,
            "approvers": approvers,
        },
    }


def rollback_alert_key(rollout_id: int, ring_position: int) -> str:
    return f"rollout:{rollout_id}:alert:ring:{ring_position}:rollback"


def rollback_alert(
    rollout: Rollout,
    ring: Ring,
    text: str,
    *,
    now: dt.datetime,
    hosts: list[str],
    tickets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An alert for the on-call channel: an automatic rollback started. ``tickets`` are
    the ring's Jira tickets known so far; later keys update the alert
    (``workflows.tickets.refresh_alert``)."""
    return {
        "key": rollback_alert_key(rollout.id, ring.position),
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "parent_key": parent_key(rollout.id),
        "payload": {
            "kind": "rollout.alert",
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "ring": ring.name,
            "ring_id": ring.id,
            "hosts": hosts,
            "text": text,
            "tickets": tickets or [],
        },
    }


def rollback_alert_update(
    alert_key: str, alert: dict[str, Any], *, rollout_id: int, now: dt.datetime
) -> dict[str, Any]:
    """Update a posted rollback alert in place (``chat.update``) with its tickets; one row
    per number of tickets known, so a repeat is a no-op."""
    count = len(alert.get("tickets") or [])
    return {
        "key": f"{alert_key}:tickets:{count}",
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout_id,
        "parent_key": alert_key,
        "payload": {**alert, "kind": "rollout.alert.update"},
    }


async def summary_facts(session: AsyncSession, rollout: Rollout) -> dict[str, Any]:
    """The final summary's numbers: hosts by state, packages, durations."""
    rows = await session.execute(
        sa.select(HostRun.state, sa.func.count())
        .where(HostRun.rollout_id == rollout.id)
        .group_by(HostRun.state)
    )
    counts = {state: n for state, n in rows.all()}
    last_patched = await session.scalar(
        sa.select(sa.func.max(HostRun.finished_at)).where(
            HostRun.rollout_id == rollout.id, HostRun.state == "healthy"
        )
    )
    started = rollout.started_at or rollout.created_at
    end = rollout.finished_at
    if last_patched is not None and last_patched.tzinfo is None:
        last_patched = last_patched.replace(tzinfo=dt.UTC)
    # workflows.exceptions imports tickets, which imports this module: import late.
    from workflows.exceptions import applied_to

    return {
        "counts": counts,
        "exceptions": await applied_to(session, rollout_id=rollout.id, at=started),
        "packages": await package_changes(session, rollout),
        "duration_seconds": (end - started).total_seconds() if end else None,
        "time_to_last_patched_seconds": (last_patched - started).total_seconds()
        if last_patched
        else None,
    }
