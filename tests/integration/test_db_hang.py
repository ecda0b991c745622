"""The database hangs for a while in the middle of a rollout (issue 9, item 2).

A throwaway PostgreSQL cluster (tests/pgcluster.py, never the shared server) behind a TCP
proxy (tests/fakes/tcpproxy.py) that can be switched to *hold*: connections are accepted
and read but nothing is forwarded or answered, as a stuck server or a black-holed network
does. Nothing fails fast then: no connection is refused, no error comes back; only the
client's own timeouts can notice.

The real serve loop (``bot.cli.serve.Server``: the leader lock, the engine, the outbox
worker with the real ``slack_sdk`` client against the Slack emulator) runs through the
proxy with simulated hosts whose applies take a while. Once some hosts are patched the
proxy holds for a few seconds. The leader must notice (its heartbeat times out instead of
waiting for ever) and step down, stand by while the database does not answer, lead again
under a new epoch once it answers, and finish the rollout as ``test_db_restart.py``
checks it: every host applied exactly once, every host run final, no lease left, every
notification delivered once, and the audit chain verifies. The test reads the database
directly (not through the proxy) while the proxy holds.
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

import workflows.db
from bot.app import Runtime
from bot.cli.serve import Server
from bot.leader import LEADER_LOCK_KEY, PostgresLeaderLock, leader_lock
from bot.settings import Settings
from integrations.slack import SlackDeliverer, make_client
from tests.enginekit import Rig, make_plan
from tests.fakes.slack_api import SlackEmulator
from tests.fakes.tcpproxy import TcpProxy
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
HOLD_FOR = 6.0  # seconds the database does not answer
APPLY_DELAY = 0.3  # seconds each simulated apply takes
# A hang is turned into a failure after this long (a guard, not a timed assertion).
GUARD = 120.0


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with PgCluster.create() as made:
        yield made


@pytest.fixture
def proxy(cluster: PgCluster) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", cluster.port) as made:
        yield made


def proxied_url(proxy: TcpProxy) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"


async def _until(what: str, check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


async def test_the_proxy_holds_a_statement_until_released(
    cluster: PgCluster, proxy: TcpProxy
) -> None:
    """The fault is real: a statement sent during the hold gets no answer, and gets it
    once the proxy forwards again."""
    db = create_database(proxied_url(proxy))
    try:
        async with read_only(db) as session:
            assert await session.scalar(sa.text("SELECT 1")) == 1
        proxy.hold()

        async def ask() -> object:
            async with read_only(db) as session:
                return await session.scalar(sa.text("SELECT 2"))

        asking = asyncio.create_task(ask())
        done, _ = await asyncio.wait([asking], timeout=1.0)
        assert not done, "a held statement was answered"
        proxy.release()
        assert await asyncio.wait_for(asking, timeout=GUARD) == 2
    finally:
        await db.dispose()


async def test_a_new_connection_to_a_database_that_hangs_times_out(
    cluster: PgCluster, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a connect timeout a pool checkout waits for ever for the server's answer
    to the login: the CLI, the Slack handlers and the leader's takeover with it."""
    monkeypatch.setattr(workflows.db, "POSTGRES_CONNECT_TIMEOUT", 2)
    db = create_database(proxied_url(proxy))
    proxy.hold()
    try:
        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            async with asyncio.timeout(GUARD), read_only(db) as session:
                await session.execute(sa.text("SELECT 1"))
        assert proxy.accepted_while_held >= 1
    finally:
        proxy.release()
        await db.dispose()


async def test_a_connect_timeout_in_the_database_url_wins(
    cluster: PgCluster, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows.db, "POSTGRES_CONNECT_TIMEOUT", 3600)
    db = create_database(f"{proxied_url(proxy)}?connect_timeout=2")
    proxy.hold()
    try:
        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            async with asyncio.timeout(GUARD), read_only(db) as session:
                await session.execute(sa.text("SELECT 1"))
    finally:
        proxy.release()
        await db.dispose()


async def test_a_takeover_the_database_stops_answering_gives_the_lock_back(
    cluster: PgCluster, proxy: TcpProxy
) -> None:
    """The advisory lock is granted, then the epoch bump (through the pool) gets no
    answer: no heartbeat runs yet, so acquire() itself must give up, closing the lock's
    session so that another process can lead, instead of waiting for ever holding it."""
    direct = create_database(cluster.url)
    async with direct.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    db = create_database(proxied_url(proxy))
    async with read_only(db) as session:  # an open pooled connection: no login to time out
        await session.execute(sa.text("SELECT 1"))
    lock = leader_lock(db, takeover=2.0)
    assert isinstance(lock, PostgresLeaderLock)
    # The lock's own connection bypasses the proxy: the lock is granted, the bump hangs.
    lock._conninfo = cluster.url
    proxy.hold()
    try:
        epoch = await asyncio.wait_for(lock.acquire(), timeout=GUARD)
        assert epoch is None and not lock.is_leader
        async with read_only(direct) as session:
            free = await session.scalar(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
            )
            await session.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY}
            )
            assert free, "the lock was given back"
            assert await session.get(LeaderState, "engine") is None, "no epoch was taken"
    finally:
        proxy.release()
        await lock.release()
        await db.dispose()
        await direct.dispose()


async def test_the_leader_steps_down_while_the_database_hangs_and_finishes_cleanly(
    cluster: PgCluster,
    proxy: TcpProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    url = proxied_url(proxy)
    direct = create_database(cluster.url)  # the test's own view, past the proxy
    async with direct.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    db = create_database(url)
    rig = Rig(db)
    rig.executor.apply_delay = APPLY_DELAY
    slack = SlackEmulator(token=TOKEN)
    await slack.start()
    (tmp_path / "plans").mkdir()
    settings = Settings(
        _env_file=None,
        database_url=url,
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

    async def rollout_state(database: Database) -> str:
        async with read_only(database) as session:
            rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout.state

    async def finished() -> bool:
        return await rollout_state(direct) in ("succeeded", "failed", "rolled_back", "aborted")

    async def outbox_done() -> bool:
        async with read_only(direct) as session:
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
        assert applied() < len(rig.hosts), "the database hangs in the middle"

        proxy.hold()
        held = asyncio.get_running_loop().time()
        await _until("the leader stepping down", not_leading, within=GUARD)
        logging.getLogger(__name__).info(
            "the leader stepped down %.1f s into the hang",
            asyncio.get_running_loop().time() - held,
        )
        stepped_down_at = applied()
        await asyncio.sleep(HOLD_FOR)  # the fault lasts: not a synchronisation
        assert proxy.holding and not lock.is_leader, "no leader while the database hangs"
        assert proxy.accepted_while_held > 0, "the standby kept trying (and was held)"
        assert applied() == stepped_down_at, "no host work while nobody leads"
        assert await rollout_state(direct) == "running"
        proxy.release()

        async def new_epoch() -> bool:
            return lock.epoch is not None and lock.epoch > (first_epoch or 0)

        await _until("a leader again under a new epoch", new_epoch, within=GUARD)
        await _until("the rollout's end", finished, within=GUARD)
        await _until("the outbox emptied", outbox_done, within=GUARD)
    finally:
        proxy.release()
        server.request_shutdown("SIGTERM")
        await asyncio.wait_for(serving, timeout=GUARD)
        await slack.stop()
        await db.dispose()

    messages = caplog.text
    assert "leader lock lost (epoch 1): the leader connection failed (timeout)" in messages
    assert "stepping down" in messages
    async with read_only(direct) as session:
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
    result = await audit.verify_database(direct)
    assert result.count > 0
    await direct.dispose()
