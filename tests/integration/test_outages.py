"""Slack or Jira down in the middle of a rollout, with PatchGate restarted during the outage.

The engine, the outbox worker, the real ``slack_sdk`` client against the Slack emulator
and the real ``jira`` client against the Jira emulator, on SQLite and PostgreSQL. Each
service goes down (tests/fakes/outage.py: connection refused, 503, 429 with Retry-After,
a request that is never answered) after the first ring; the rollout goes through its
gates and finishes while the service is down; PatchGate is restarted during the outage
(a new Database, engine, clients and worker over the same database; for ``hang`` the old
worker is killed with a request in flight, so its rows stay leased); then the service
comes back. Afterwards every notification and ticket arrived exactly once (from the
emulators' records), nothing is pending or dead, every host was applied once, and the
audit chain verifies.

Already covered elsewhere (not repeated here): counted Slack failures without a restart
(tests/slack/test_outage.py), Jira refused across a restart with one ring
(tests/integration/test_jira_scenarios.py), and the clients' error mapping
(tests/integration/test_jira.py, tests/slack/test_delivery.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa

from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer, make_client
from tests.enginekit import Rig, make_hosts
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.outage import KINDS
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows import audit
from workflows.db import Database, create_database, read_only
from workflows.engine import Engine
from workflows.models import OutboxItem, Rollout
from workflows.outbox import OutboxWorker

TOKEN = "xoxb-test-token"
RETRY_AFTER = 120  # seconds the 429 asks for: no attempt may come sooner
CLIENT_TIMEOUT = 1  # seconds; the "hang" outage is ended only by this timeout
FAILING_HOST = "prod-03"  # its health check fails: one ticket (prod's budget is 1)


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment="Server")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.come_up()
        await emulator.stop()


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with slack_emulator(token=TOKEN) as emulator:
        yield emulator


class PatchGate:
    """One PatchGate process: its own Database, engine, clients and outbox worker.

    The simulated hosts and the clock (the rig) outlive it, like the real fleet and time.
    """

    def __init__(
        self, url: str, rig: Rig, jira: JiraEmulator, slack: SlackEmulator, name: str
    ) -> None:
        self.db: Database = create_database(url)
        self.rig = rig
        self.ticketer = JiraTicketer(
            JiraConfig(
                url=jira.url,
                token=jira.token,
                project="OPS",
                timeout=CLIENT_TIMEOUT,
                search_settle=0.0,
            )
        )
        client = make_client(token=TOKEN, base_url=slack.url, timeout=CLIENT_TIMEOUT)
        rig.db = self.db
        self.engine: Engine = rig.engine()
        self.worker = OutboxWorker(
            self.db,
            {
                "ticket": self.ticketer,
                "notify": SlackDeliverer(
                    client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL"
                ),
            },
            clock=rig.clock.now,
            owner=name,
            base_backoff=1,
            max_backoff=30,
        )

    async def close(self) -> None:
        self.ticketer.close()
        await self.db.dispose()

    async def deliver_all(self) -> None:
        """Deliver until nothing is left, letting retry delays and leases run out."""
        for _ in range(60):
            await self.engine.run_until_idle()
            if await self.worker.run_once() == 0:
                async with read_only(self.db) as session:
                    pending = await session.scalar(
                        sa.select(sa.func.count())
                        .select_from(OutboxItem)
                        .where(OutboxItem.state == "pending")
                    )
                if not pending:
                    return
                self.rig.clock.advance(dt.timedelta(minutes=2))
        raise AssertionError("the outbox never emptied")


async def _rows(db: Database) -> list[OutboxItem]:
    async with read_only(db) as session:
        return list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))


async def _approve_gates_until_done(pg: PatchGate, rollout_id: int) -> None:
    await pg.rig.approve_all(pg.engine, rollout_id)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("service", ["slack", "jira"])
async def test_an_outage_across_a_restart_loses_nothing_duplicates_nothing_and_delays_nothing(
    db: Database,
    database_url: str,
    jira: JiraEmulator,
    slack: SlackEmulator,
    service: str,
    kind: str,
) -> None:
    down = slack if service == "slack" else jira
    rig = Rig(db, hosts=make_hosts())
    rig.executor.fail(FAILING_HOST, "health", "unhealthy")
    first = PatchGate(database_url, rig, jira, slack, "first")
    rollout_id = await rig.start()
    await first.engine.run_until_idle()  # dev ring done, staging gate open
    await first.deliver_all()
    assert (await rig.rollout(rollout_id)).state not in ("succeeded", "succeeded_with_failures")

    # --- the outage begins in the middle of the rollout ---------------------------------
    await down.go_down(kind, retry_after=RETRY_AFTER)
    outage_began = rig.clock.now()
    await _approve_gates_until_done(first, rollout_id)
    rollout = await rig.rollout(rollout_id)
    # On time: the rollout finished while the service was down, not held up by it
    # (with the failing host inside the budget).
    assert rollout.state == "succeeded_with_failures", rollout.state
    assert rollout.finished_at is not None
    finished_at = rollout.finished_at

    if kind == "hang":
        # Killed with a request in flight: the row stays leased by the dead worker.
        in_flight = asyncio.create_task(first.worker.run_once())
        for _ in range(1500):  # up to 15 s on a loaded machine; usually a few ms
            if down.outage.requests_while_down or in_flight.done():
                break
            await asyncio.sleep(0.01)
        assert down.outage.requests_while_down, "a request reached the hung service"
        in_flight.cancel()
        with pytest.raises(asyncio.CancelledError):
            await in_flight
        assert any(r.lease_owner == "first" for r in await _rows(first.db))
    else:
        await first.worker.run_once()
        attempted = [r for r in await _rows(first.db) if r.attempts]
        assert attempted and all(r.state == "pending" for r in attempted if r.last_error)
        if kind == "429":
            now = rig.clock.now()
            waits = [(r.next_attempt_at - now).total_seconds() for r in attempted if r.last_error]
            assert waits and min(waits) >= RETRY_AFTER, waits
    await first.close()

    # --- PatchGate restarts while the service is still down ------------------------------
    rig.clock.advance(dt.timedelta(minutes=3))  # past the dead worker's lease and backoffs
    second = PatchGate(database_url, rig, jira, slack, "second")
    await second.engine.run_until_idle()
    await second.worker.run_once()
    errors = [r.last_error for r in await _rows(second.db) if r.last_error]
    assert errors, "the restarted worker tried and failed while the service was down"
    if kind == "hang":
        assert any("timeout" in e.lower() or "timed out" in e.lower() for e in errors), errors
    assert not any(r.state == "dead" for r in await _rows(second.db))

    # --- the service comes back -----------------------------------------------------------
    await down.come_up()
    rig.clock.advance(dt.timedelta(minutes=5))
    await second.deliver_all()
    rows = await _rows(second.db)
    await second.close()

    assert Counter(r.state for r in rows) == Counter({"delivered": len(rows)})
    # Slack: each posted row exactly once (message metadata carries the outbox key).
    posted = Counter(m["metadata"]["event_payload"]["key"] for m in slack.posted() if m["metadata"])
    assert posted and max(posted.values()) == 1, posted
    notify_posts = {
        r.key
        for r in rows
        if r.topic == "notify" and ":update:" not in r.key and not r.key.endswith(":closed")
    }
    assert set(posted) == notify_posts
    # Jira: one ticket for the one failed host, created once.
    assert len(jira.issues) == 1, list(jira.issues)
    (issue,) = jira.issues.values()
    assert f"pg-host-{FAILING_HOST}" in issue.labels
    creates = [c for c in jira.calls if c == ("POST", "issue")]
    assert creates, "the ticket was created through the API"
    # The rollout's end was not moved by the outage; every host applied once.
    assert (await rig.rollout(rollout_id)).finished_at == finished_at
    assert finished_at <= outage_began + dt.timedelta(minutes=1)
    for host in rig.hosts:
        assert rig.executor.apply_count(host.name) == 1, host.name
    verify_db = create_database(database_url)
    try:
        result = await audit.verify_database(verify_db)
    finally:
        await verify_db.dispose()
    assert result.count > 0
    async with read_only(db) as session:
        assert (await session.get(Rollout, rollout_id)) is not None
