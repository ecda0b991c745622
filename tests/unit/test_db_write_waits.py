"""How long writers wait for the database to begin a transaction is measured
(``workflows.db.WriteWaits``) and exposed on /metrics."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bot.metrics import Metrics
from tests.e2e.harness import metric
from workflows.db import Database, unit_of_work
from workflows.models import LeaderState


async def test_a_writer_queued_behind_another_is_measured_and_exposed(db: Database) -> None:
    async with unit_of_work(db) as session:
        session.add(LeaderState(name="probe", epoch=0))
    assert db.write_waits.total >= 1
    held = asyncio.Event()

    async def long_writer() -> None:
        async with unit_of_work(db) as session:
            await session.execute(
                sa.update(LeaderState).where(LeaderState.name == "probe").values(epoch=1)
            )
            held.set()
            await asyncio.sleep(1.3)

    first = asyncio.create_task(long_writer())
    await held.wait()
    before = db.write_waits.total
    async with unit_of_work(db) as session:  # the heartbeat-like writer
        await session.execute(sa.select(LeaderState.epoch))
    await first
    assert db.write_waits.total == before + 1
    if db.dialect == "sqlite":  # one writer at a time: it waited for the first
        assert db.write_waits.longest >= 1.0
        assert db.write_waits.over_1s == 1
    metrics = Metrics()
    await metrics.refresh(db, leader=False, epoch=None)
    text = metrics.exposition().decode()
    assert metric(text, "patchgate_db_write_wait_max_seconds") == db.write_waits.longest
    assert metric(text, "patchgate_db_write_waits_over_1s") == db.write_waits.over_1s
