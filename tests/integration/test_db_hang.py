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
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import workflows.db
from bot.leader import LEADER_LOCK_KEY, PostgresLeaderLock, leader_lock
from tests.enginekit import make_plan
from tests.fakes.tcpproxy import TcpProxy
from tests.integration.served import FINAL, RINGS, assert_finished_cleanly, served, until
from tests.pgcluster import PgCluster
from workflows.db import create_database, read_only
from workflows.models import Base, LeaderState, Rollout

HOLD_FOR = 6.0  # seconds the database does not answer
# A hang is turned into a failure after this long (a guard, not a timed assertion).
GUARD = 120.0


@pytest.fixture
def proxy(cluster: PgCluster) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", cluster.port) as made:
        yield made


def proxied_url(proxy: TcpProxy) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"


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

    async def rollout_state() -> str:
        async with read_only(direct) as session:
            rollout = await session.get(Rollout, rollout_id)
        assert rollout is not None
        return rollout.state

    async def finished() -> bool:
        return await rollout_state() in FINAL

    try:
        async with served(db, url=url, tmp_path=tmp_path, guard=GUARD) as run:
            try:
                await until("the first leader", run.leading, within=30)
                first_epoch = run.lock.epoch
                rollout_id = await run.rig.start(make_plan(rings=RINGS))
                await until("two hosts patched", run.two_applied, within=60)
                assert run.applied() < len(run.rig.hosts), "the database hangs in the middle"

                proxy.hold()
                held = asyncio.get_running_loop().time()
                await until("the leader stepping down", run.not_leading, within=GUARD)
                logging.getLogger(__name__).info(
                    "the leader stepped down %.1f s into the hang",
                    asyncio.get_running_loop().time() - held,
                )
                stepped_down_at = run.applied()
                await asyncio.sleep(HOLD_FOR)  # the fault lasts: not a synchronisation
                assert proxy.holding and not run.lock.is_leader, "no leader during the hang"
                assert proxy.accepted_while_held > 0, "the standby kept trying (and was held)"
                assert run.applied() == stepped_down_at, "no host work while nobody leads"
                assert await rollout_state() == "running"
                proxy.release()

                await until("a leader again", run.new_epoch_after(first_epoch), within=GUARD)
                await until("the rollout's end", finished, within=GUARD)
                await until("the outbox emptied", lambda: run.outbox_done(direct), within=GUARD)
            finally:
                proxy.release()
    finally:
        await db.dispose()

    messages = caplog.text
    assert "leader lock lost (epoch 1): the leader connection failed (timeout)" in messages
    assert "stepping down" in messages
    await assert_finished_cleanly(direct, run, rollout_id=rollout_id, first_epoch=first_epoch)
    await direct.dispose()
