"""Fencing: a takeover cannot slip in under a write the old leader has already checked.

The engine compares ``leader_state.epoch`` with its own at the start of every write
transaction. Read plainly, a new leader could bump the epoch and start working right
after that check while the old leader's transaction goes on to commit (the old leader may
not have noticed yet that its lock is gone, e.g. the database restarted under it). The
check therefore takes a share lock on the row: the takeover waits for the transaction
in flight, and every later transaction of the old engine sees the new epoch.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from bot.leader import bump_epoch
from tests.enginekit import Rig
from workflows.db import Database, create_database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.errors import StaleLeader
from workflows.models import Event


async def _waiting_on_a_lock(db: Database) -> bool:
    async with read_only(db) as session:
        waiting = await session.scalar(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
        )
    return bool(waiting)


async def test_a_takeover_waits_for_the_old_leaders_checked_write_and_then_fences_it(
    db: Database,
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time and one leader (a file lock)")
    rig = Rig(db)
    old_epoch = await bump_epoch(db, holder="old")
    engine = Engine(
        EngineDeps(
            db=db,
            executor=rig.executor,
            health=rig.health,
            inventory=rig.inventory,
            clock=rig.clock,
        ),
        epoch=old_epoch,
    )
    other = create_database(db.urls)
    try:
        async with engine.ctx.tx("test") as session:  # the epoch is checked here
            takeover = asyncio.create_task(bump_epoch(other, holder="new"))
            for _ in range(400):
                if takeover.done() or await _waiting_on_a_lock(other):
                    break
                await asyncio.sleep(0.025)
            assert not takeover.done(), "the takeover did not wait for the checked write"
            await engine.ctx.event(session, "test.write", None)
        assert await asyncio.wait_for(takeover, timeout=10) == old_epoch + 1
        with pytest.raises(StaleLeader):
            async with engine.ctx.tx("test") as session:
                await engine.ctx.event(session, "test.late", None)
    finally:
        await other.dispose()
    async with read_only(db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind).order_by(Event.id)))
    assert "test.write" in kinds and "test.late" not in kinds
