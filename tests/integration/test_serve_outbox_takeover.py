"""A new leader frees the outbox rows an earlier leader had claimed when it died, so
they (and the rollout's later messages, which wait behind them) go out at once rather
than when the lease runs out (found by the crash matrix: a gate's readiness message
held back a minute after a SIGKILL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
import sqlalchemy as sa

from bot.cli.serve import release_earlier_leases
from integrations.testing.deliverers import RecordingDeliverer
from workflows import outbox
from workflows.db import Database, read_only, unit_of_work
from workflows.models import OutboxItem

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


async def _leased_rows(db: Database) -> None:
    async with unit_of_work(db) as session:
        await outbox.enqueue(session, key="rollout:1:m1", topic="notify", payload={}, at=NOW)
        await outbox.enqueue(  # a thread reply: waits for its parent
            session,
            key="rollout:1:m2",
            topic="notify",
            payload={},
            at=NOW,
            parent_key="rollout:1:m1",
        )
        await session.flush()
        await session.execute(
            sa.update(OutboxItem)
            .where(OutboxItem.key == "rollout:1:m1")
            .values(lease_owner="vm:100:1", lease_until=NOW + dt.timedelta(seconds=60))
        )


async def test_a_new_leader_delivers_at_once_the_rows_a_dead_leader_had_claimed(
    db: Database,
) -> None:
    await _leased_rows(db)
    deliverer = RecordingDeliverer()
    worker = outbox.OutboxWorker(db, {"notify": deliverer}, clock=lambda: NOW, owner="vm:200:2")
    assert await worker.run_once() == 0, "the dead leader's lease holds the rollout's rows"

    assert await release_earlier_leases(db, owner="vm:200:2") == 1
    while await worker.run_once():
        pass
    assert deliverer.keys == ["rollout:1:m1", "rollout:1:m2"]


async def test_freeing_leases_leaves_the_leaders_own_and_finished_rows_alone(
    db: Database,
) -> None:
    await _leased_rows(db)
    async with unit_of_work(db) as session:
        await session.execute(
            sa.update(OutboxItem)
            .where(OutboxItem.key == "rollout:1:m2")
            .values(lease_owner="vm:200:2", lease_until=NOW + dt.timedelta(seconds=60))
        )
    assert await release_earlier_leases(db, owner="vm:200:2") == 1
    async with read_only(db) as session:
        owners = dict(
            (await session.execute(sa.select(OutboxItem.key, OutboxItem.lease_owner))).all()
        )
    assert owners == {"rollout:1:m1": None, "rollout:1:m2": "vm:200:2"}


async def test_a_database_that_does_not_answer_does_not_hold_the_takeover(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Freeing the leases runs before the leader's heartbeat: it is bounded, and the new
    leader goes on (the worker takes the rows when their leases end)."""
    from bot.cli import serve

    async def never(db: Database, *, owner: str) -> int:
        await asyncio.Event().wait()
        return 0

    monkeypatch.setattr(serve, "release_earlier_leases", never)
    with caplog.at_level(logging.WARNING, logger="patchgate.serve"):
        assert (
            await asyncio.wait_for(serve.free_earlier_leases(db, owner="vm:200:2", within=0.2), 10)
            is None
        )
    assert "could not free an earlier leader's outbox leases (TimeoutError)" in caplog.text
    monkeypatch.undo()
    await _leased_rows(db)
    assert await serve.free_earlier_leases(db, owner="vm:200:2") == 1  # when it answers
