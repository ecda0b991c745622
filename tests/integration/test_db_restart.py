"""The database goes away for a few seconds in the middle of a rollout.

A throwaway PostgreSQL cluster (tests/pgcluster.py: initdb/pg_ctl on a free port in a
temporary directory, never the shared server) runs under the real serve loop
(``bot.cli.serve.Server``: the leader lock, the engine, the outbox worker with the real
``slack_sdk`` client against the Slack emulator), with simulated hosts whose applies take
a while. Once some hosts are patched the cluster is stopped (``fast``: every session
ended; ``immediate``: a crash, recovery at the next start) and left down a few seconds,
or started again at once (possibly before the heartbeat notices). The leader must step
down when its lock connection dies, stand by while
the database is unreachable, lead again with a new epoch once it is back, and finish the
rollout leaving nothing half-written: every host applied exactly once (the recording
executor's own record), every host run final, no host lease or outbox lease left, every
notification delivered once (the emulator's record), and the audit chain verifies.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.enginekit import make_plan
from tests.integration.served import (
    FINAL,
    RINGS,
    TAKEOVER,
    assert_finished_cleanly,
    served,
    until,
)
from tests.pgcluster import PgCluster
from workflows.db import Database, create_database, read_only
from workflows.models import Base

DOWN_FOR = 4.0  # seconds the database stays away


async def _readable(db: Database) -> bool:
    try:
        async with read_only(db) as session:
            await session.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.mark.parametrize(
    ("mode", "down_for"),
    [("fast", DOWN_FOR), ("immediate", DOWN_FOR), ("immediate", 0.0)],
    ids=["fast", "immediate", "immediate-quick-restart"],
)
async def test_the_leader_steps_down_while_the_database_is_away_and_finishes_cleanly(
    cluster: PgCluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    down_for: float,
) -> None:
    caplog.set_level(logging.INFO)
    db = create_database(cluster.url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)

    async with served(db, url=cluster.url, tmp_path=tmp_path, guard=60) as run:

        async def finished() -> bool:
            if not await _readable(db):
                return False
            return (await run.rig.rollout(rollout_id)).state in FINAL

        await until("the first leader", run.leading, within=30)
        first_epoch = run.lock.epoch
        rollout_id = await run.rig.start(make_plan(rings=RINGS))
        await until("two hosts patched", run.two_applied, within=60)
        assert run.applied() < len(run.rig.hosts), "the database went away in the middle"

        await asyncio.to_thread(cluster.stop, mode=mode)
        if down_for:
            await until("the leader stepping down", run.not_leading, within=4 * TAKEOVER)
            await asyncio.sleep(down_for)
            assert not run.lock.is_leader, "no leader while the database is away"
            assert not await _readable(db)
        # A quick restart may be back before the heartbeat noticed: the engine's pool
        # reconnects at once, and the dead lock connection still makes the leader step down.
        await asyncio.to_thread(cluster.start)

        await until("a leader again", run.new_epoch_after(first_epoch), within=30)
        await until("the rollout's end", finished, within=120)
        await until("the outbox emptied", lambda: run.outbox_done(db), within=120)

    messages = caplog.text
    assert "leader lock lost" in messages
    assert "stepping down" in messages
    await assert_finished_cleanly(db, run, rollout_id=rollout_id, first_epoch=first_epoch)
    await db.dispose()
