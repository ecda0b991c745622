"""Outbox rows: adding them in the producer's transaction, dead letters, and operating on them.

A row exists if and only if the change that caused it committed, because producers call
:func:`enqueue` inside their own transaction. Delivered and dead rows are recorded in the
audit log by key and topic, never by payload: payloads may carry text users typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.errors import Conflict, NotFound
from workflows.models import OutboxItem, OutboxState

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


async def mark_dead(session: AsyncSession, row: OutboxItem, *, error: str, at: dt.datetime) -> None:
    """Give up on ``row`` (releasing its lease) and audit it; ``outbox retry`` revives it."""
    row.state = OutboxState.DEAD.value
    row.last_error = short_error(error)
    row.lease_owner = None
    row.lease_until = None
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
    """Revive a dead row: pending again, attempts reset, due at ``at``. Audited."""
    row = await session.get(OutboxItem, item_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"outbox row {item_id} does not exist")
    if row.state != OutboxState.DEAD.value:
        raise Conflict(f"outbox row {item_id} is {row.state}; only dead rows can be retried")
    row.state = OutboxState.PENDING.value
    row.attempts = 0
    row.next_attempt_at = at
    row.lease_owner = None
    row.lease_until = None
    await audit.append(
        session,
        kind="outbox.retried",
        data={"outbox_id": row.id, "key": row.key, "topic": row.topic},
        at=at,
        actor=actor,
        rollout_id=row.rollout_id,
    )
    return row


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows per state (every state present, zeros included), for /metrics and App Home."""
    result = {state.value: 0 for state in OutboxState}
    rows = await session.execute(
        sa.select(OutboxItem.state, sa.func.count()).group_by(OutboxItem.state)
    )
    for state, n in rows:
        result[state] = n
    return result
