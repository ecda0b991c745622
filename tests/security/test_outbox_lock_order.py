"""Found by the secrets suite's full rollout on PostgreSQL: the outbox worker recorded a
delivery by locking the outbox row and then the audit lock, while the engine (holding
the audit lock) waited for that row: a deadlock, after which the row stayed leased and
the rollout's later notifications waited behind it. The worker now takes the audit lock
first, like every other writer."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from tests.unit.test_outbox_helpers import FakeClock, put, row
from workflows import audit, outbox
from workflows.db import Database, unit_of_work
from workflows.models import OutboxItem
from workflows.ports import Delivery


class Gated:
    """A deliverer that says when it is delivering and waits for ``go``."""

    def __init__(self) -> None:
        self.delivering = asyncio.Event()
        self.go = asyncio.Event()

    async def deliver(self, item: outbox.DeliveryItem) -> Delivery:
        self.delivering.set()
        await self.go.wait()
        return Delivery({"ok": True})


async def _waiting_for_advisory_lock(db: Database) -> None:
    while True:
        async with unit_of_work(db) as session:
            waiting = await session.scalar(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
        if waiting:
            return
        await asyncio.sleep(0.05)


async def test_recording_a_delivery_never_deadlocks_with_a_writer_holding_the_audit_lock(
    db: Database,
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the audit lock is a PostgreSQL advisory lock")
    await put(db, "r1:started", rollout_id=1)
    clock = FakeClock()
    clock.advance(5)
    deliverer = Gated()
    worker = outbox.OutboxWorker(db, {"slack.post": deliverer}, clock=clock, owner="w1")
    run = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(deliverer.delivering.wait(), 30)

    async with unit_of_work(db) as session:  # the engine: audit lock, then the row
        await audit.lock(session)
        deliverer.go.set()  # the worker now records the outcome and waits for the audit lock
        await asyncio.wait_for(_waiting_for_advisory_lock(db), 30)
        locked = await session.get(OutboxItem, (await row(db, "r1:started")).id,
                                   with_for_update=True)  # fmt: skip
        assert locked is not None  # granted: the worker holds no row lock while it waits
    assert await asyncio.wait_for(run, 30) == 1
    stored = await row(db, "r1:started")
    assert stored.state == "delivered" and stored.attempts == 1
