"""Reads that several rooms make the same way: a rollout's rings, host counts by state,
the active rollouts, the exceptions a rollout applied (the exceptions room and the
summary's facts in reports). One definition each, so "in order" and "active" mean the same
thing everywhere. Each runs in the caller's session (and transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.db import in_parts
from workflows.models import Host, HostException, HostRun, Ring, Rollout
from workflows.states import ROLLOUT_ACTIVE_VALUES

__all__ = [
    "active_at",
    "active_rollout_ids",
    "applied_to",
    "host_state_counts",
    "hosts_by_name",
    "rings_of",
    "runs_by_id",
]


async def rings_of(session: AsyncSession, *, rollout_id: int) -> list[Ring]:
    """The rollout's rings in plan order."""
    return list(
        await session.scalars(
            sa.select(Ring).where(Ring.rollout_id == rollout_id).order_by(Ring.position)
        )
    )


async def host_state_counts(
    session: AsyncSession, *, rollout_id: int | None = None, ring_id: int | None = None
) -> dict[str, int]:
    """How many host runs are in each state, for one ring or (without ``ring_id``) a
    whole rollout. Exactly one of the two is given."""
    if (rollout_id is None) == (ring_id is None):
        raise ValueError("give exactly one of rollout_id and ring_id")
    where = HostRun.ring_id == ring_id if ring_id is not None else HostRun.rollout_id == rollout_id
    rows = await session.execute(
        sa.select(HostRun.state, sa.func.count()).where(where).group_by(HostRun.state)
    )
    return {state: count for state, count in rows.all()}


async def active_rollout_ids(session: AsyncSession, *, plan_name: str | None = None) -> list[int]:
    """The rollouts not yet settled (of one plan, if named), oldest first."""
    query = sa.select(Rollout.id).where(Rollout.state.in_(ROLLOUT_ACTIVE_VALUES))
    if plan_name is not None:
        query = query.where(Rollout.plan_name == plan_name)
    return list(await session.scalars(query.order_by(Rollout.id)))


async def runs_by_id(session: AsyncSession, *, run_ids: Sequence[int]) -> list[HostRun]:
    """The host runs with these ids (a batch), in no particular order."""
    found: list[HostRun] = []
    for part in in_parts(run_ids):
        found.extend(await session.scalars(sa.select(HostRun).where(HostRun.id.in_(part))))
    return found


async def hosts_by_name(session: AsyncSession, *, names: Iterable[str]) -> dict[str, Host]:
    """The rows of the hosts named (a name without a row is left out), read in parts:
    the names can be every host of the inventory."""
    return {
        h.name: h
        for part in in_parts(sorted(set(names)))
        for h in await session.scalars(sa.select(Host).where(Host.name.in_(part)))
    }


def active_at(at: dt.datetime) -> sa.ColumnElement[bool]:
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
                HostRun.rollout_id == rollout_id,
                # only the runs an exception touched (not every host of a large rollout)
                sa.or_(
                    HostRun.state == "excepted",
                    sa.cast(HostRun.held_packages, sa.Text).not_in(["[]", "null"]),
                ),
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
    for part in in_parts(sorted({h for h, _ in wanted})):
        for row in await session.scalars(
            sa.select(HostException)
            .where(HostException.host_name.in_(part), active_at(at))
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
