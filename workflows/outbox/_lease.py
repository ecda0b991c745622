"""Leasing rows and recording what became of them: the rules that keep delivery orderly.

- A row is *ready* when it has no parent (``parent_key``) or its parent is ``delivered``.
  A row is claimable when it is ``pending``, ready, due (``next_attempt_at <= now``), not
  leased (or its lease expired), its topic has a deliverer, and no earlier (lower id) row
  of the same rollout **and topic** is pending and ready. Waiting on a row therefore means
  waiting on a ready row with a lower id (which waits only on lower ids again) or on a
  parent: the rows of a rollout are delivered in order among themselves, rows of other
  topics never hold them up, and no set of rows can wait on each other in a circle. (Before
  issue 16, a row waited on every earlier pending row of its rollout: a freeze note queued
  before the rollout's parent message waited on the parent, which waited on the note.)
- A child whose parent is dead goes dead at once, with a reason naming the parent
  (``mark_dead`` passes it on; ``retry`` of the parent revives them together). A child
  whose parent has not been queued waits for it (producers may queue a thread reply before
  the parent message: a freeze holds a rollout before its parent is posted) for at most
  ``orphan_grace`` after it became due, then goes dead saying so; a parent chain that loops
  back goes dead at once.
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
from workflows.outbox._rows import mark_dead, parent_dead_error
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
    orphan_grace: dt.timedelta,
) -> list[DeliveryItem]:
    """Settle children that can never be ready, then lease up to ``limit`` claimable rows of
    ``topics`` to ``owner``."""
    await settle_orphans(session, now=now, grace=orphan_grace)
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
    blocked_by_earlier = (
        sa.select(earlier.id)
        .where(
            earlier.rollout_id == OutboxItem.rollout_id,
            earlier.topic == OutboxItem.topic,
            earlier.id < OutboxItem.id,
            earlier.state == OutboxState.PENDING.value,
            _ready(earlier, "earlier_parent"),
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
            _ready(OutboxItem, "parent"),
        )
        .order_by(OutboxItem.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxItem)
    return list((await session.scalars(query)).all())


def _ready(row: Any, name: str) -> sa.ColumnElement[bool]:
    """``row`` has no parent, or its parent is delivered."""
    parent = aliased(OutboxItem, name=name)
    delivered = (
        sa.select(parent.id)
        .where(parent.key == row.parent_key, parent.state == OutboxState.DELIVERED.value)
        .exists()
    )
    return sa.or_(row.parent_key.is_(None), delivered)


async def settle_orphans(session: AsyncSession, *, now: dt.datetime, grace: dt.timedelta) -> None:
    """Dead-letter pending children that can never become ready: the parent is dead (a child
    queued after its parent died), has not been queued within ``grace`` of the child
    becoming due, or the parent chain loops back to the child."""
    parent = aliased(OutboxItem, name="parent")
    query = (
        sa.select(OutboxItem, parent)
        .outerjoin(parent, parent.key == OutboxItem.parent_key)
        .where(
            OutboxItem.state == OutboxState.PENDING.value,
            OutboxItem.parent_key.is_not(None),
            _free(now),
            sa.or_(parent.id.is_(None), parent.state != OutboxState.DELIVERED.value),
        )
        .order_by(OutboxItem.id)
    )
    waiting = list(await session.execute(query))
    parent_of = {child.key: child.parent_key for child, _ in waiting}
    verdicts: list[tuple[int, str, OutboxItem | None]] = []  # (row id, reason, dead root)
    for child, up in waiting:
        if up is None:
            if child.next_attempt_at + grace <= now:
                why = f"parent outbox row {child.parent_key!r} was not queued within "
                verdicts.append((child.id, f"{why}{_span(grace)} of this row", None))
        elif up.state == OutboxState.DEAD.value:
            first = await _first_dead(session, up)
            verdicts.append((child.id, parent_dead_error(up, first), first))
        elif (loop := _loop(child.key, parent_of)) is not None:
            verdicts.append((child.id, f"its parent chain loops: {' -> '.join(loop)}", None))
    if not verdicts:
        return
    # Giving up appends audit events: the audit lock first, then the rows, as every writer.
    await audit.lock(session)
    for row_id, why, root in verdicts:
        row = await session.get(OutboxItem, row_id, with_for_update=True, populate_existing=True)
        if row is None or row.state != OutboxState.PENDING.value:
            continue  # given up on with an ancestor in this pass, or taken meanwhile
        await mark_dead(session, row, error=why, at=now, root=root)


async def _first_dead(session: AsyncSession, row: OutboxItem) -> OutboxItem:
    """The highest dead ancestor of dead ``row`` (or ``row``): the one to retry."""
    seen = {row.key}
    while row.parent_key is not None and row.parent_key not in seen:
        up = await session.scalar(sa.select(OutboxItem).where(OutboxItem.key == row.parent_key))
        if up is None or up.state != OutboxState.DEAD.value:
            break
        seen.add(up.key)
        row = up
    return row


def _loop(key: str, parent_of: Mapping[str, str | None]) -> list[str] | None:
    """The parent chain from ``key`` back to ``key``, if it loops."""
    chain, seen, at = [key], {key}, parent_of.get(key)
    while at is not None:
        chain.append(at)
        if at == key:
            return chain
        if at in seen:
            return None  # a loop further up, not through ``key``: its own rows settle it
        seen.add(at)
        at = parent_of.get(at)
    return None


def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


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
) -> str:
    """Record one attempt's outcome if ``owner`` still holds the row. Returns what became
    of it: ``delivered``, ``retry`` (pending, due later), ``dead`` (with its reason in
    ``last_error``), or ``lost`` (another worker holds the row; nothing recorded).

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
        return "lost"
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
        return "delivered"
    assert error is not None
    if permanent:
        await mark_dead(session, row, error=error, at=now)
        return "dead"
    if row.attempts >= max_attempts:
        await mark_dead(
            session, row, error=f"gave up after {row.attempts} attempts: {error}", at=now
        )
        return "dead"
    delay = max(backoff(row.attempts), retry_after or 0.0)
    row.last_error = error
    row.next_attempt_at = now + dt.timedelta(seconds=delay)
    return "retry"
