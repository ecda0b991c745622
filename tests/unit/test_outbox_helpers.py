"""Helpers (no tests here) shared by the outbox tests: a fake clock and small factories."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from workflows import outbox
from workflows.db import Database, read_only, unit_of_work
from workflows.models import OutboxItem

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


class FakeClock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


async def put(
    db: Database,
    key: str,
    *,
    topic: str = "slack.post",
    rollout_id: int | None = None,
    parent_key: str | None = None,
    at: dt.datetime = T0,
    **payload: Any,
) -> OutboxItem | None:
    async with unit_of_work(db) as session:
        return await outbox.enqueue(
            session,
            key=key,
            topic=topic,
            payload=payload or {"text": f"message {key}"},
            at=at,
            rollout_id=rollout_id,
            parent_key=parent_key,
        )


async def row(db: Database, key: str) -> OutboxItem:
    async with read_only(db) as session:
        return (await session.scalars(sa.select(OutboxItem).where(OutboxItem.key == key))).one()
