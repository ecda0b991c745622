"""A three-ring rollout run by the real serve loop against a throwaway PostgreSQL
cluster, for the database-fault tests (test_db_restart.py: the database goes away;
test_db_hang.py: it stops answering).

``bot.cli.serve.Server`` runs with the leader lock, the engine and the outbox worker
(the real ``slack_sdk`` client against the Slack emulator), on simulated hosts whose
applies take a while. :func:`assert_finished_cleanly` is the end check both share:
every host applied exactly once, every host run final, no host or outbox lease left,
every notification delivered once, a new epoch moved the rollout to its end, and the
audit chain verifies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bot.app import Runtime
from bot.cli.serve import Server
from bot.leader import LeaderLock, leader_lock
from bot.settings import Settings
from integrations.slack import SlackDeliverer, make_client
from tests.enginekit import Rig
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows import audit
from workflows.db import Database, read_only
from workflows.models import HostLease, HostRun, LeaderState, OutboxItem, Rollout
from workflows.notify import TOPIC

TOKEN = "xoxb-test-token"
RINGS = [
    {"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 0},
    {"name": "staging", "hosts": "group:staging", "batch": 1},
    {"name": "prod", "hosts": "group:prod", "batch": 2, "failure_budget": 1},
]
TAKEOVER = 3.0  # seconds: heartbeat (and standby retry) every second
APPLY_DELAY = 0.3  # seconds each simulated apply takes
FINAL = ("succeeded", "succeeded_with_failures", "failed", "rolled_back", "aborted")


async def until(what: str, check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.05)


@dataclass
class Served:
    rig: Rig
    slack: SlackEmulator
    lock: LeaderLock

    def applied(self) -> int:
        return sum(self.rig.executor.apply_count(h.name) for h in self.rig.hosts)

    async def two_applied(self) -> bool:
        return self.applied() >= 2

    async def leading(self) -> bool:
        return self.lock.is_leader

    async def not_leading(self) -> bool:
        return not self.lock.is_leader

    def new_epoch_after(self, first: int | None) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return self.lock.epoch is not None and self.lock.epoch > (first or 0)

        return check

    async def outbox_done(self, db: Database) -> bool:
        """No row pending (the clock is moved past leases and backoffs while some are)."""
        async with read_only(db) as session:
            states = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
        if states.get("pending"):
            self.rig.clock.advance(dt.timedelta(minutes=5))
            await asyncio.sleep(0.2)
            return False
        return True


@asynccontextmanager
async def served(db: Database, *, url: str, tmp_path: Path, guard: float) -> AsyncIterator[Served]:
    """The serve loop on ``db`` (its schema created) until the block ends, then SIGTERM."""
    rig = Rig(db)
    rig.executor.apply_delay = APPLY_DELAY
    async with slack_emulator(token=TOKEN) as slack:
        (tmp_path / "plans").mkdir()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            plans_dir=tmp_path / "plans",
            leader_takeover=TAKEOVER,
            engine_tick=0.2,
            executor="recording",
            discovery_interval=0,  # no scheduled refreshes: the tests drive the fleet
            assess_interval=0,
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
        try:
            yield Served(rig, slack, lock)
        finally:
            server.request_shutdown("SIGTERM")
            await asyncio.wait_for(serving, timeout=guard)


async def assert_finished_cleanly(
    db: Database, run: Served, *, rollout_id: int, first_epoch: int | None
) -> None:
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
    assert runs == {h.name: "healthy" for h in run.rig.hosts}, runs
    for host in run.rig.hosts:
        assert run.rig.executor.apply_count(host.name) == 1, host.name
    assert not leases, "every host lease was released"
    assert rows and {r.state for r in rows} == {"delivered"}
    assert all(r.lease_owner is None and r.lease_until is None for r in rows)
    posted = Counter(
        m["metadata"]["event_payload"]["key"] for m in run.slack.posted() if m["metadata"]
    )
    assert posted and max(posted.values()) == 1, posted
    result = await audit.verify_database(db)
    assert result.count > 0
