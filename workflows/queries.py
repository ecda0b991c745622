"""Reads that several rooms make the same way: a rollout's rings, host counts by state,
the active rollouts. One definition each, so "in order" and "active" mean the same
thing everywhere. Each runs in the caller's session (and transaction).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import HostRun, Ring, Rollout
from workflows.states import ROLLOUT_ACTIVE_VALUES

__all__ = ["active_rollout_ids", "host_state_counts", "rings_of", "runs_by_id"]


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
    return list(await session.scalars(sa.select(HostRun).where(HostRun.id.in_(run_ids))))
