"""Leasing rows and recording what became of them: the rules that keep delivery orderly.

- A row is claimable when it is ``pending``, due (``next_attempt_at <= now``), not leased
  (or its lease expired), its topic has a deliverer, no earlier (lower id) row of the same
  rollout is still ``pending`` (dead rows do not block), and its parent (``parent_key``), if
  any, is ``delivered``. A child whose parent is dead or missing goes dead too.
- Claiming sets ``lease_owner``/``lease_until`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
  SQLite's ``BEGIN IMMEDIATE`` excludes other writers). An outcome is recorded only if the
  recording worker still holds the row.
- A failed attempt retries with exponential backoff (equal jitter, capped), never sooner
  than its ``retry_after``; after ``max_attempts`` attempts, or at once on a permanent
  failure, the row is dead. ``attempts`` counts every attempt, successful or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from workflows import audit
from workflows.models import OutboxItem, OutboxState
from workflows.outbox._rows import mark_dead
from workflows.ports import Delivery

log = logging.getLogger("patchgate.outbox")


@dataclass(frozen=True)
class DeliveryItem:
    """One outbox row as a deliverer sees it."""

    id: int
    key: str
    topic: str
    payload: Mapping[str, Any]
    rollout_id: int | None
    parent: Delivery | None  # the parent row's stored result, when it has a parent
    attempts: int  # attempts made before this one


def backoff_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failure: exponential, equal jitter, capped."""
    ceiling = min(cap, base * 2.0 ** max(attempts - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _free(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until <= now)


# --- claiming -------------------------------------------------------------------------------


async def unrouted_topics(session: AsyncSession, *, topics: Collection[str]) -> list[str]:
    """Topics with pending rows but no deliverer among ``topics``: such rows stay pending."""
    query = (
        sa.select(OutboxItem.topic).where(OutboxItem.state == OutboxState.PENDING.value).distinct()
    )
    if topics:
        query = query.where(OutboxItem.topic.not_in(sorted(topics)))
    return list((await session.scalars(query)).all())


async def claim(
    session: AsyncSession,
    *,
    topics: Collection[str],
    dialect: str,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
) -> list[DeliveryItem]:
    """Kill orphans, then lease up to ``limit`` claimable rows of ``topics`` to ``owner``."""
    await _kill_orphans(session, dialect=dialect, now=now)
    ids = await _claimable_ids(session, topics=topics, dialect=dialect, now=now, limit=limit)
    if not ids:
        return []
    await session.execute(
        sa.update(OutboxItem)
        .where(OutboxItem.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + lease)
    )
    rows = (
        await session.scalars(
            sa.select(OutboxItem)
            .where(OutboxItem.id.in_(ids))
            .order_by(OutboxItem.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    parent_keys = {r.parent_key for r in rows if r.parent_key is not None}
    parents: dict[str, dict[str, Any] | None] = {}
    if parent_keys:
        found = await session.execute(
            sa.select(OutboxItem.key, OutboxItem.result).where(OutboxItem.key.in_(parent_keys))
        )
        parents = {k: r for k, r in found}
    return [
        DeliveryItem(
            id=r.id,
            key=r.key,
            topic=r.topic,
            payload=dict(r.payload),
            rollout_id=r.rollout_id,
            parent=(
                Delivery(dict(parents.get(r.parent_key) or {}))
                if r.parent_key is not None
                else None
            ),
            attempts=r.attempts,
        )
        for r in rows
    ]


async def _claimable_ids(
    session: AsyncSession,
    *,
    topics: Collection[str],
    dialect: str,
    now: dt.datetime,
    limit: int,
) -> list[int]:
    if not topics:
        return []
    earlier = aliased(OutboxItem, name="earlier")
    parent = aliased(OutboxItem, name="parent")
    blocked_by_earlier = (
        sa.select(earlier.id)
        .where(
            earlier.rollout_id == OutboxItem.rollout_id,
            earlier.id < OutboxItem.id,
            earlier.state == OutboxState.PENDING.value,
        )
        .exists()
    )
    parent_delivered = (
        sa.select(parent.id)
        .where(
            parent.key == OutboxItem.parent_key,
            parent.state == OutboxState.DELIVERED.value,
        )
        .exists()
    )
    query = (
        sa.select(OutboxItem.id)
        .where(
            OutboxItem.state == OutboxState.PENDING.value,
            OutboxItem.next_attempt_at <= now,
            _free(now),
            OutboxItem.topic.in_(sorted(topics)),
            ~blocked_by_earlier,
            sa.or_(OutboxItem.parent_key.is_(None), parent_delivered),
        )
        .order_by(OutboxItem.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxItem)
    return list((await session.scalars(query)).all())


async def _kill_orphans(session: AsyncSession, *, dialect: str, now: dt.datetime) -> None:
    """Pending children whose parent is dead or does not exist go dead too."""
    parent = aliased(OutboxItem, name="parent")
    query = (
        sa.select(OutboxItem, parent.state)
        .outerjoin(parent, parent.key == OutboxItem.parent_key)
        .where(
            OutboxItem.state == OutboxState.PENDING.value,
            OutboxItem.parent_key.is_not(None),
            _free(now),
            sa.or_(parent.id.is_(None), parent.state == OutboxState.DEAD.value),
        )
        .order_by(OutboxItem.id)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxItem)
    for child, parent_state in await session.execute(query):
        why = "is dead" if parent_state is not None else "does not exist"
        await mark_dead(
            session, child, error=f"parent outbox row {child.parent_key!r} {why}", at=now
        )


# --- recording ------------------------------------------------------------------------------


async def record_outcome(
    session: AsyncSession,
    *,
    item: DeliveryItem,
    owner: str,
    now: dt.datetime,
    delivery: Delivery | None,
    error: str | None,
    permanent: bool,
    retry_after: float | None,
    max_attempts: int,
    backoff: Callable[[int], float],
) -> bool:
    """Record one attempt's outcome if ``owner`` still holds the row; True if delivered.

    ``backoff(attempts)`` gives the seconds to wait after the ``attempts``-th failure.
    """
    # The audit lock before the row lock, the order of every other writer (the engine
    # appends its events, then touches outbox rows): the other way round deadlocked on
    # PostgreSQL and left the row leased.
    await audit.lock(session)
    row = await session.get(OutboxItem, item.id, with_for_update=True, populate_existing=True)
    if row is None or row.state != OutboxState.PENDING.value or row.lease_owner != owner:
        log.warning(
            "outbox %s: lease lost before the result was recorded (another worker "
            "took the row); the outcome of this attempt is dropped",
            item.key,
        )
        return False
    row.attempts += 1
    row.lease_owner = None
    row.lease_until = None
    if delivery is not None:
        row.state = OutboxState.DELIVERED.value
        row.result = dict(delivery.data)
        row.delivered_at = now
        row.last_error = None
        await audit.append(
            session,
            kind="outbox.delivered",
            data={
                "outbox_id": row.id,
                "key": row.key,
                "topic": row.topic,
                "attempts": row.attempts,
            },
            at=now,
            rollout_id=row.rollout_id,
        )
        return True
    assert error is not None
    if permanent:
        await mark_dead(session, row, error=error, at=now)
    elif row.attempts >= max_attempts:
        await mark_dead(
            session, row, error=f"gave up after {row.attempts} attempts: {error}", at=now
        )
    else:
        delay = max(backoff(row.attempts), retry_after or 0.0)
        row.last_error = error
        row.next_attempt_at = now + dt.timedelta(seconds=delay)
    return False
