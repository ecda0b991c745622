"""Reading exceptions: which are active now (or were at a past moment), and what they
leave out of the engine's layouts and a rollout's summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Assessment, HostException, Ticket


def active(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        HostException.revoked_at.is_(None),
        HostException.lapsed_at.is_(None),
        HostException.expires_at > now,
    )


def scope(exc: HostException) -> str:
    scope = exc.host_name + (f" package {exc.package}" if exc.package else "")
    return scope + (f" ({exc.cve})" if exc.cve else "")


async def ticket_of(session: AsyncSession, exc: HostException) -> Ticket | None:
    return await session.scalar(
        sa.select(Ticket).where(Ticket.exception_id == exc.id).order_by(Ticket.id).limit(1)
    )


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
    """Active exceptions, soonest expiry first (the list commands show)."""
    return list(
        await session.scalars(
            sa.select(HostException)
            .where(active(now))
            .order_by(HostException.expires_at, HostException.id)
        )
    )


async def held_packages(session: AsyncSession, *, now: dt.datetime) -> dict[str, list[str]]:
    """Package-scoped active exceptions: host -> packages left out of its patch set."""
    rows = await session.execute(
        sa.select(HostException.host_name, HostException.package).where(
            active(now), HostException.package.is_not(None)
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
            sa.select(HostException.host_name).where(active(now), HostException.package.is_(None))
        )
    )
