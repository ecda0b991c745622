"""Outbox rows: adding them in the producer's transaction, dead letters, and operating on them.

A row exists if and only if the change that caused it committed, because producers call
:func:`enqueue` inside their own transaction. Delivered and dead rows are recorded in the
audit log by key and topic, never by payload: payloads may carry text users typed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.errors import Conflict, NotFound
from workflows.models import OutboxItem, OutboxState

log = logging.getLogger("patchgate.outbox")

ERROR_LIMIT = 2000  # characters of an error message kept on the row


def short_error(error: BaseException | str) -> str:
    """The error as kept on the row: its text (with its type, for exceptions), capped."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:ERROR_LIMIT]


# --- producing ----------------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    topic: str,
    payload: Mapping[str, Any],
    at: dt.datetime,
    rollout_id: int | None = None,
    parent_key: str | None = None,
) -> OutboxItem | None:
    """Add a row in the caller's transaction. Idempotent: an existing key changes nothing.

    Returns the new row, or None if a row with this key already exists (race-free:
    ``INSERT … ON CONFLICT (key) DO NOTHING`` on both backends).
    """
    values: dict[str, Any] = {
        "key": key,
        "topic": topic,
        "payload": dict(payload),
        "rollout_id": rollout_id,
        "parent_key": parent_key,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxItem)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[OutboxItem.key])
        .returning(OutboxItem.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    return await session.get(OutboxItem, new_id)


# --- dead letters -----------------------------------------------------------------------------


def parent_dead_error(parent: OutboxItem, root: OutboxItem | None = None) -> str:
    """Why a child of a dead row is dead too, naming the parent, the row that died first
    (``root``, when the parent died because of it) and how to resume them."""
    if root is None or root.id == parent.id:
        return (
            f"parent outbox row {parent.key!r} (id {parent.id}) is dead; "
            f"`patchgate outbox retry {parent.id}` resumes it and then this row"
        )
    return (
        f"parent outbox row {parent.key!r} (id {parent.id}) is dead because {root.key!r} "
        f"(id {root.id}) is; `patchgate outbox retry {root.id}` resumes them and then this row"
    )


async def mark_dead(
    session: AsyncSession,
    row: OutboxItem,
    *,
    error: str,
    at: dt.datetime,
    root: OutboxItem | None = None,
) -> None:
    """Give up on ``row`` (releasing its lease), audit and log it, and give up on the pending
    rows waiting on it (its children, theirs, ...) with a reason naming it: a child of a dead
    row would otherwise wait for ever. ``outbox retry`` of ``row`` (or of ``root``, the dead
    row ``row`` itself died for) revives them all."""
    root = root or row
    await _dead(session, row, error=error, at=at)
    waiting = [row]
    while waiting:
        parent = waiting.pop()
        children = await session.scalars(
            sa.select(OutboxItem)
            .where(
                OutboxItem.parent_key == parent.key,
                OutboxItem.state == OutboxState.PENDING.value,
            )
            .order_by(OutboxItem.id)
            .with_for_update()
        )
        for child in list(children):
            await _dead(session, child, error=parent_dead_error(parent, root), at=at)
            waiting.append(child)


async def _dead(session: AsyncSession, row: OutboxItem, *, error: str, at: dt.datetime) -> None:
    row.state = OutboxState.DEAD.value
    row.last_error = short_error(error)
    row.lease_owner = None
    row.lease_until = None
    log.warning("outbox row %s (%s, %s) is dead: %s", row.id, row.key, row.topic, row.last_error)
    await audit.append(
        session,
        kind="outbox.dead",
        data={
            "outbox_id": row.id,
            "key": row.key,
            "topic": row.topic,
            "attempts": row.attempts,
            "error": row.last_error,
        },
        at=at,
        rollout_id=row.rollout_id,
    )


# --- operating --------------------------------------------------------------------------------


async def list_items(
    session: AsyncSession, *, state: str | None = None, limit: int = 100
) -> list[OutboxItem]:
    """Rows, newest first, optionally in one state."""
    query = sa.select(OutboxItem).order_by(OutboxItem.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OutboxItem.state == OutboxState(state).value)
    return list((await session.scalars(query)).all())


async def retry(
    session: AsyncSession, *, item_id: int, at: dt.datetime, actor: str | None = None
) -> OutboxItem:
    """Revive a dead row: pending again, attempts reset, due at ``at``. Audited.

    The dead rows waiting on it (its children, theirs, ...) are revived with it: they died
    because it did (a child is tried only after its parent is delivered, and a delivered row
    never dies), and wait for it again. A row whose parent is dead is refused, naming the
    parent to retry instead: reviving it alone would only see it die again.
    """
    await audit.lock(session)  # before any row lock, as every writer (it appends an event)
    row = await session.get(OutboxItem, item_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"outbox row {item_id} does not exist")
    if row.state != OutboxState.DEAD.value:
        raise Conflict(f"outbox row {item_id} is {row.state}; only dead rows can be retried")
    if row.parent_key is not None:
        parent = await session.scalar(sa.select(OutboxItem).where(OutboxItem.key == row.parent_key))
        if parent is not None and parent.state == OutboxState.DEAD.value:
            raise Conflict(
                f"outbox row {item_id} waits on its parent {parent.key!r} (id {parent.id}), "
                f"which is dead: retry {parent.id} (its children follow it)"
            )
    revived = [row, *await _dead_descendants(session, row)]
    for each in revived:
        each.state = OutboxState.PENDING.value
        each.attempts = 0
        each.next_attempt_at = at
        each.lease_owner = None
        each.lease_until = None
    await audit.append(
        session,
        kind="outbox.retried",
        data={
            "outbox_id": row.id,
            "key": row.key,
            "topic": row.topic,
            "waiting": [each.id for each in revived[1:]],
        },
        at=at,
        actor=actor,
        rollout_id=row.rollout_id,
    )
    return row


async def _dead_descendants(session: AsyncSession, row: OutboxItem) -> list[OutboxItem]:
    found: list[OutboxItem] = []
    keys = [row.key]
    while keys:
        children = list(
            await session.scalars(
                sa.select(OutboxItem)
                .where(
                    OutboxItem.parent_key.in_(keys),
                    OutboxItem.state == OutboxState.DEAD.value,
                )
                .order_by(OutboxItem.id)
                .with_for_update()
            )
        )
        children = [c for c in children if c.id != row.id and c not in found]
        found.extend(children)
        keys = [c.key for c in children]
    return found


async def waiting_on(session: AsyncSession, *, key: str) -> list[OutboxItem]:
    """Pending rows waiting on ``key``: its children, theirs, ..., in id order."""
    found: list[OutboxItem] = []
    keys = [key]
    while keys:
        children = [
            c
            for c in await session.scalars(
                sa.select(OutboxItem).where(
                    OutboxItem.parent_key.in_(keys),
                    OutboxItem.state == OutboxState.PENDING.value,
                )
            )
            if c not in found and c.key != key
        ]
        found.extend(children)
        keys = [c.key for c in children]
    return sorted(found, key=lambda c: c.id)


async def dead_reason(session: AsyncSession, *, item_id: int) -> str | None:
    """The reason a dead row is dead (None if it is not dead)."""
    row = await session.get(OutboxItem, item_id)
    if row is None or row.state != OutboxState.DEAD.value:
        return None
    return row.last_error or "dead"


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows per state (every state present, zeros included), for /metrics and App Home."""
    result = {state.value: 0 for state in OutboxState}
    rows = await session.execute(
        sa.select(OutboxItem.state, sa.func.count()).group_by(OutboxItem.state)
    )
    for state, n in rows:
        result[state] = n
    return result
