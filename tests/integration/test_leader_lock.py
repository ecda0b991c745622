"""The leader lock and the leader epoch, in-process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from bot.leader import LeaderLock, PostgresLeaderLock, bump_epoch, leader_lock
from tests.enginekit import Rig
from workflows.db import Database, create_database, read_only, unit_of_work
from workflows.engine import Engine, EngineDeps
from workflows.errors import StaleLeader
from workflows.models import LeaderState


def engine_with_epoch(rig: Rig, epoch: int) -> Engine:
    deps = EngineDeps(
        db=rig.db,
        executor=rig.executor,
        health=rig.health,
        inventory=rig.inventory,
        clock=rig.clock,
    )
    return Engine(deps, epoch=epoch)


async def leader_row(db: Database) -> LeaderState:
    async with read_only(db) as session:
        row = await session.get(LeaderState, "engine")
    assert row is not None
    return row


async def test_a_stale_leaders_next_write_is_refused_and_changes_nothing(db: Database) -> None:
    rig = Rig(db)
    rollout_id = await rig.start()
    old = await bump_epoch(db, holder="old-leader:1")
    stale = engine_with_epoch(rig, old)

    new = await bump_epoch(db, holder="new-leader:2")
    assert new == old + 1
    with pytest.raises(StaleLeader, match=f"leader epoch is {new}, this engine has {old}"):
        await stale.tick()
    assert (await rig.rollout(rollout_id)).state == "scheduled"

    current = engine_with_epoch(rig, new)
    assert await current.tick()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "assessing"
    assert rollout.epoch == new


async def test_each_takeover_increments_the_epoch_and_records_the_holder(db: Database) -> None:
    assert await bump_epoch(db, holder="a:1") == 1
    assert await bump_epoch(db, holder="b:2") == 2
    row = await leader_row(db)
    assert (row.epoch, row.holder) == (2, "b:2")
    assert row.acquired_at is not None and row.heartbeat_at is not None


async def test_only_one_lock_is_held_at_a_time_and_the_next_holder_gets_a_higher_epoch(
    db: Database,
) -> None:
    first = leader_lock(db, takeover=3)
    second = leader_lock(db, takeover=3)
    try:
        epoch = await first.acquire()
        assert epoch is not None and first.is_leader
        assert await second.acquire() is None
        assert not second.is_leader

        await first.release()
        assert not first.is_leader
        taken = await second.acquire()
        assert taken == epoch + 1
        assert (await leader_row(db)).holder == second.holder
    finally:
        await first.release()
        await second.release()


async def test_a_second_sqlite_leader_is_refused_with_the_reason(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite's file lock")
    first = leader_lock(db, takeover=3)
    second = leader_lock(db, takeover=3)
    try:
        assert await first.acquire() == 1
        assert await second.acquire() is None
        assert second.refusal == (
            f"another patchgate serve holds the leader lock on {db.urls.sqlite_path}; "
            "SQLite supports one leader"
        )
    finally:
        await first.release()
        await second.release()


async def test_the_heartbeat_records_itself_while_the_lock_is_held(db: Database) -> None:
    lock = leader_lock(db, takeover=0.9)  # heartbeats every 0.3 s
    lost: list[str] = []
    try:
        await lock.acquire()
        before = (await leader_row(db)).heartbeat_at
        holder = asyncio.create_task(lock.hold(lost.append))
        await asyncio.sleep(1.0)
        holder.cancel()
        after = (await leader_row(db)).heartbeat_at
        assert before is not None and after is not None and after > before
        assert lost == []
    finally:
        await lock.release()


async def test_a_holder_steps_down_when_another_process_has_taken_over(db: Database) -> None:
    lock = leader_lock(db, takeover=0.9)
    lost: list[str] = []
    try:
        await lock.acquire()
        await bump_epoch(db, holder="usurper:9")  # e.g. after a partition healed
        await asyncio.wait_for(lock.hold(lost.append), timeout=5)
        assert len(lost) == 1 and "epoch moved on" in lost[0]
        assert not lock.is_leader
    finally:
        await lock.release()


async def test_postgres_holder_steps_down_at_once_when_its_lock_connection_dies(
    db: Database,
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL's dedicated lock connection")
    lock: LeaderLock = leader_lock(db, takeover=0.9)
    assert isinstance(lock, PostgresLeaderLock)
    lost: list[str] = []
    other = create_database(db.urls)
    try:
        assert await lock.acquire() is not None
        async with unit_of_work(other) as session:
            killed = await session.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'patchgate-leader' "
                    "AND datname = current_database()"
                )
            )
        assert killed == 1
        await asyncio.wait_for(lock.hold(lost.append), timeout=5)
        assert len(lost) == 1 and "leader connection failed" in lost[0]
        assert not lock.is_leader
        # The session ended, so the advisory lock is free for the next leader.
        successor = leader_lock(db, takeover=0.9)
        try:
            assert await successor.acquire() == 2
        finally:
            await successor.release()
    finally:
        await lock.release()
        await other.dispose()
