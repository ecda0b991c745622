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
import datetime as dt
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.app import Runtime
from bot.cli.serve import Server
from bot.leader import leader_lock
from bot.settings import Settings
from integrations.slack import SlackDeliverer, make_client
from tests.enginekit import Rig, make_plan
from tests.fakes.slack_api import SlackEmulator
from tests.pgcluster import PgCluster, missing_reason
from workflows import audit
from workflows.db import Database, create_database, read_only
from workflows.models import Base, HostLease, HostRun, LeaderState, OutboxItem, Rollout
from workflows.notifications import TOPIC

TOKEN = "xoxb-test-token"
RINGS = [
    {"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 0},
    {"name": "staging", "hosts": "group:staging", "batch": 1},
    {"name": "prod", "hosts": "group:prod", "batch": 2, "failure_budget": 1},
]
TAKEOVER = 3.0  # seconds: heartbeat (and standby retry) every second
DOWN_FOR = 4.0  # seconds the database stays away
APPLY_DELAY = 0.3  # seconds each simulated apply takes


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with PgCluster.create() as made:
        yield made


async def _until(what: str, check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


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
    rig = Rig(db)
    rig.executor.apply_delay = APPLY_DELAY
    slack = SlackEmulator(token=TOKEN)
    await slack.start()
    (tmp_path / "plans").mkdir()
    settings = Settings(
        _env_file=None,
        database_url=cluster.url,
        plans_dir=tmp_path / "plans",
        leader_takeover=TAKEOVER,
        engine_tick=0.2,
        executor="recording",
    )
    client = make_client(token=TOKEN, base_url=slack.url, timeout=2)
    runtime = Runtime(
        settings=settings,
        db=db,
        executor=rig.executor,
        health=rig.health,
        inventory=rig.inventory,
        clock=rig.clock,
        deliverers={TOPIC: SlackDeliverer(client, oncall_channel="C0ONCALL")},
    )
    lock = leader_lock(db, takeover=TAKEOVER)
    server = Server(runtime, lock)
    serving = asyncio.create_task(server.run())

    def applied() -> int:
        return sum(rig.executor.apply_count(h.name) for h in rig.hosts)

    async def two_applied() -> bool:
        return applied() >= 2

    async def leading() -> bool:
        return lock.is_leader

    async def not_leading() -> bool:
        return not lock.is_leader

    async def finished() -> bool:
        if not await _readable(db):
            return False
        state = (await rig.rollout(rollout_id)).state
        return state in ("succeeded", "failed", "rolled_back", "aborted")

    async def outbox_done() -> bool:
        async with read_only(db) as session:
            states = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
        if states.get("pending"):
            rig.clock.advance(dt.timedelta(minutes=5))  # past leases and backoffs
            await asyncio.sleep(0.2)
            return False
        return True

    try:
        await _until("the first leader", leading, within=30)
        first_epoch = lock.epoch
        rollout_id = await rig.start(make_plan(rings=RINGS))
        await _until("two hosts patched", two_applied, within=60)
        assert applied() < len(rig.hosts), "the database went away in the middle"

        await asyncio.to_thread(cluster.stop, mode=mode)
        if down_for:
            await _until("the leader stepping down", not_leading, within=4 * TAKEOVER)
            await asyncio.sleep(down_for)
            assert not lock.is_leader, "no leader while the database is away"
            assert not await _readable(db)
        # A quick restart may be back before the heartbeat noticed: the engine's pool
        # reconnects at once, and the dead lock connection still makes the leader step down.
        await asyncio.to_thread(cluster.start)

        async def new_epoch() -> bool:
            return lock.epoch is not None and lock.epoch > (first_epoch or 0)

        await _until("a leader again under a new epoch", new_epoch, within=30)
        await _until("the rollout's end", finished, within=120)
        await _until("the outbox emptied", outbox_done, within=120)
    finally:
        server.request_shutdown("SIGTERM")
        await asyncio.wait_for(serving, timeout=60)
        await slack.stop()

    messages = caplog.text
    assert "leader lock lost" in messages
    assert "stepping down" in messages
    async with read_only(db) as session:
        state = await session.get(LeaderState, "engine")
        rollout = await session.get(Rollout, rollout_id)
        runs = dict((await session.execute(sa.select(HostRun.host_name, HostRun.state))).all())
        leases = (await session.scalars(sa.select(HostLease))).all()
        rows = (await session.scalars(sa.select(OutboxItem))).all()
    assert state is not None and first_epoch is not None
    assert state.epoch > first_epoch, "led again under a new epoch"
    assert rollout is not None and rollout.state == "succeeded", rollout and rollout.state
    assert rollout.epoch == state.epoch, "the new leader moved the rollout to its end"
    assert runs == {h.name: "healthy" for h in rig.hosts}, runs
    for host in rig.hosts:
        assert rig.executor.apply_count(host.name) == 1, host.name
    assert not leases, "every host lease was released"
    assert rows and {r.state for r in rows} == {"delivered"}
    assert all(r.lease_owner is None and r.lease_until is None for r in rows)
    posted = Counter(m["metadata"]["event_payload"]["key"] for m in slack.posted() if m["metadata"])
    assert posted and max(posted.values()) == 1, posted
    result = await audit.verify_database(db)
    assert result.count > 0
    await db.dispose()
