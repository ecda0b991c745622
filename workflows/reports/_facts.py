"""Facts read from the database for notifications: what a ring did, which packages move,
a readiness message's context, a rollout's final numbers.

They live with the reports, not with the notifications: the notify room only shapes
events, and reading exceptions here (for the summary) would otherwise make notify import
the rooms that import it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.hostos import patch_label
from workflows.models import HostRun, Ring, Rollout
from workflows.queries import applied_to


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
    labels: dict[str, str] = {}  # a vendor update (KB, catalog entry): how it is named
    for platform, packages in (rollout.patchset or {}).items():
        known = (rollout.patchset_updates or {}).get(platform) or {}
        for name, version in packages.items():
            wanted.setdefault(name, set()).add(str(version))
            if known.get(name):
                labels[name] = patch_label(name, str(version), known[name])
    before: dict[str, set[str]] = {}
    # Each distinct set of versions once (a fleet has few): the database compares them
    # as text, and 100,000 hosts' rows are not decoded on the event loop one by one.
    text = sa.cast(HostRun.before_versions, sa.Text)
    query = (
        sa.select(text)
        .where(HostRun.rollout_id == rollout.id, HostRun.before_versions.is_not(None))
        .distinct()
    )
    if ring_id is not None:
        query = query.where(HostRun.ring_id == ring_id)
    for encoded in await session.scalars(query):
        versions = json.loads(encoded) if encoded else None
        if not isinstance(versions, dict):
            continue  # JSON null
        for name, version in versions.items():
            if name in wanted and version is not None:
                before.setdefault(name, set()).add(str(version))
    return [
        {
            "name": name,
            "from": ", ".join(sorted(before.get(name, set()))) or None,
            "to": ", ".join(sorted(wanted[name])),
            **({"label": labels[name]} if name in labels else {}),
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
    return {
        "counts": counts,
        "exceptions": await applied_to(session, rollout_id=rollout.id, at=started),
        "packages": await package_changes(session, rollout),
        "duration_seconds": (end - started).total_seconds() if end else None,
        "time_to_last_patched_seconds": (last_patched - started).total_seconds()
        if last_patched
        else None,
    }
