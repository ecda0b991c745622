"""The outbox worker: claiming, ordering, retries, dead letters, crashes and concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest
import sqlalchemy as sa

from integrations.testing.deliverers import RecordingDeliverer
from tests.unit.test_outbox_helpers import T0, FakeClock, put, row
from workflows import audit, outbox
from workflows.db import Database, create_database, read_only, unit_of_work
from workflows.models import Event
from workflows.ports import Delivery

TOPIC = "slack.post"


def make_worker(
    db: Database, rec: outbox.Deliverer, clock: FakeClock, owner: str = "w1", **kw: object
) -> outbox.OutboxWorker:
    return outbox.OutboxWorker(db, {TOPIC: rec}, clock=clock, owner=owner, **kw)  # type: ignore[arg-type]


async def drain(worker: outbox.OutboxWorker, passes: int = 10) -> int:
    total = 0
    for _ in range(passes):
        total += await worker.run_once()
    return total


async def events(db: Database) -> list[Event]:
    async with read_only(db) as session:
        return list((await session.scalars(sa.select(Event).order_by(Event.id))).all())


async def test_a_due_row_is_delivered_once_and_recorded_in_the_audit_log(db: Database) -> None:
    await put(db, "r1:started", rollout_id=1, text="rollout 1 started", token="s3cret")
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock)
    clock.advance(5)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert rec.keys == ["r1:started"]
    stored = await row(db, "r1:started")
    assert stored.state == "delivered" and stored.result == {"seq": 1}
    assert stored.delivered_at == clock.now and stored.attempts == 1
    assert stored.lease_owner is None
    logged = await events(db)
    assert [(e.kind, e.rollout_id) for e in logged] == [("outbox.delivered", 1)]
    data = json.loads(logged[0].body)["data"]
    assert data["key"] == "r1:started" and data["topic"] == TOPIC
    assert "s3cret" not in logged[0].body
    async with read_only(db) as session:
        await audit.verify(session)


async def test_a_row_due_later_waits_for_its_time(db: Database) -> None:
    await put(db, "later", at=T0 + dt.timedelta(minutes=5))
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock)
    assert await worker.run_once() == 0
    clock.advance(300)
    assert await worker.run_once() == 1


async def test_a_transient_failure_is_retried_no_sooner_than_retry_after_and_delivered_once(
    db: Database,
) -> None:
    await put(db, "a")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_transiently(key="a", times=1, retry_after=120)
    worker = make_worker(db, rec, clock, base_backoff=1.0)
    assert await worker.run_once() == 0
    stored = await row(db, "a")
    assert stored.state == "pending" and stored.attempts == 1
    assert stored.next_attempt_at >= T0 + dt.timedelta(seconds=120)
    assert stored.last_error is not None and "simulated transient failure" in stored.last_error
    assert stored.lease_owner is None
    clock.advance(119)
    assert await worker.run_once() == 0
    clock.advance(2)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert rec.keys == ["a"] and rec.attempts["a"] == 2
    assert (await row(db, "a")).attempts == 2


async def test_a_transient_failure_without_retry_after_backs_off_exponentially(
    db: Database,
) -> None:
    await put(db, "a")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_transiently(key="a", times=3)
    worker = make_worker(db, rec, clock, base_backoff=10.0, max_backoff=25.0)
    waits = []
    for _ in range(3):
        before = clock.now
        assert await worker.run_once() == 0
        due = (await row(db, "a")).next_attempt_at
        waits.append((due - before).total_seconds())
        clock.now = due
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20 and 12.5 <= waits[2] <= 25
    assert await worker.run_once() == 1


async def test_an_unexpected_exception_counts_as_transient(db: Database) -> None:
    class Broken:
        async def deliver(self, item: outbox.DeliveryItem) -> Delivery:
            raise KeyError("channel")

    await put(db, "a")
    worker = make_worker(db, Broken(), FakeClock())
    assert await worker.run_once() == 0
    stored = await row(db, "a")
    assert stored.state == "pending" and stored.attempts == 1
    assert stored.last_error == "KeyError: 'channel'"


async def test_a_permanent_failure_goes_dead_at_once_and_retry_revives_it(db: Database) -> None:
    await put(db, "a", rollout_id=3)
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="a", message="not_in_channel")
    worker = make_worker(db, rec, clock)
    assert await worker.run_once() == 0
    clock.advance(3600)
    assert await worker.run_once() == 0
    dead = await row(db, "a")
    assert dead.state == "dead" and dead.last_error == "not_in_channel"
    assert rec.attempts["a"] == 1
    assert [e.kind for e in await events(db)] == ["outbox.dead"]

    rec.clear_failures()
    async with unit_of_work(db) as session:
        await outbox.retry(session, item_id=dead.id, at=clock.now)
    assert await worker.run_once() == 1
    assert rec.keys == ["a"] and (await row(db, "a")).state == "delivered"
    assert [e.kind for e in await events(db)] == [
        "outbox.dead",
        "outbox.retried",
        "outbox.delivered",
    ]


async def test_a_row_goes_dead_after_max_attempts(db: Database) -> None:
    await put(db, "a")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_transiently(key="a", times=100)
    worker = make_worker(db, rec, clock, max_attempts=3)
    for _ in range(5):
        await worker.run_once()
        clock.advance(10_000)
    stored = await row(db, "a")
    assert stored.state == "dead" and stored.attempts == 3
    assert stored.last_error is not None and stored.last_error.startswith(
        "gave up after 3 attempts"
    )
    assert rec.attempts["a"] == 3 and rec.delivered == []


async def test_a_later_row_of_a_rollout_waits_for_an_earlier_one_in_backoff(db: Database) -> None:
    await put(db, "r1:first", rollout_id=1)
    await put(db, "r1:second", rollout_id=1)
    await put(db, "r2:only", rollout_id=2)
    await put(db, "global")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_transiently(key="r1:first", times=1, retry_after=60)
    worker = make_worker(db, rec, clock)
    assert await drain(worker, passes=3) == 2
    assert sorted(rec.keys) == ["global", "r2:only"]  # r1:second is held back behind r1:first
    assert (await row(db, "r1:second")).attempts == 0
    clock.advance(61)
    await drain(worker, passes=3)
    assert rec.keys[2:] == ["r1:first", "r1:second"]


async def test_a_dead_row_does_not_block_the_rest_of_its_rollout(db: Database) -> None:
    await put(db, "r1:first", rollout_id=1)
    await put(db, "r1:second", rollout_id=1)
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="r1:first")
    worker = make_worker(db, rec, clock)
    await drain(worker, passes=3)
    assert rec.keys == ["r1:second"]
    assert (await row(db, "r1:first")).state == "dead"


async def test_a_child_waits_for_its_parent_and_receives_the_parents_delivery(db: Database) -> None:
    await put(db, "c:reply", parent_key="p:post")  # enqueued first, still waits for its parent
    await put(db, "p:post")
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock)
    assert await worker.run_once() == 1
    assert rec.keys == ["p:post"]
    assert await worker.run_once() == 1
    child = rec.for_key("c:reply")[0]
    assert child.parent == Delivery({"seq": 1})
    assert rec.for_key("p:post")[0].parent is None


async def test_a_child_of_a_dead_parent_goes_dead_naming_it_and_an_unqueued_one_waits(
    db: Database,
) -> None:
    await put(db, "p:post")
    await put(db, "c:reply", parent_key="p:post")
    await put(db, "orphan", parent_key="not-yet-enqueued")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="p:post")
    worker = make_worker(db, rec, clock)
    await drain(worker, passes=3)
    assert rec.delivered == [] and "c:reply" not in rec.attempts
    parent, child = await row(db, "p:post"), await row(db, "c:reply")
    orphan = await row(db, "orphan")
    assert (child.state, child.last_error) == (
        "dead",
        f"parent outbox row 'p:post' (id {parent.id}) is dead; "
        f"`patchgate outbox retry {parent.id}` resumes it and then this row",
    )
    assert orphan.state == "pending", "a parent queued later is waited for"


async def test_a_topic_without_a_deliverer_stays_pending_and_is_logged_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await put(db, "j1", topic="jira.create")
    await put(db, "j2", topic="jira.create")
    await put(db, "s1")
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock)
    caplog.set_level(logging.WARNING, logger="patchgate.outbox")
    await drain(worker, passes=3)
    assert rec.keys == ["s1"]
    assert (await row(db, "j1")).state == "pending" and (await row(db, "j2")).state == "pending"
    mentions = [r for r in caplog.records if "jira.create" in r.getMessage()]
    assert len(mentions) == 1


class Hanging:
    """A deliverer that never finishes: the worker "dies" mid-delivery when cancelled."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self, item: outbox.DeliveryItem) -> Delivery:
        self.started.append(item.key)
        self.entered.set()
        await self.release.wait()
        return Delivery({"late": True})


async def test_a_row_leased_by_a_worker_that_died_is_delivered_by_another_after_the_lease(
    db: Database,
) -> None:
    for key in ("a", "b", "c"):
        await put(db, key)
    clock = FakeClock()
    hanging = Hanging()
    worker_a = make_worker(db, hanging, clock, owner="A", lease_seconds=60)
    task = asyncio.create_task(worker_a.run_once(limit=1))
    await asyncio.wait_for(hanging.entered.wait(), timeout=10)
    task.cancel()  # worker A dies between leasing "a" and recording anything
    with pytest.raises(asyncio.CancelledError):
        await task
    leased = await row(db, "a")
    assert leased.lease_owner == "A" and leased.state == "pending"

    rec = RecordingDeliverer()
    worker_b = make_worker(db, rec, clock, owner="B", lease_seconds=60)
    assert await drain(worker_b, passes=3) == 2
    assert sorted(rec.keys) == ["b", "c"]  # "a" is still leased by A
    clock.advance(61)
    assert await drain(worker_b, passes=3) == 1
    assert sorted(rec.keys) == ["a", "b", "c"]  # exactly once each
    assert (await row(db, "a")).state == "delivered"


async def test_a_worker_whose_lease_expired_does_not_overwrite_the_new_owners_result(
    db: Database,
) -> None:
    await put(db, "a")
    clock = FakeClock()
    slow = Hanging()
    worker_a = make_worker(db, slow, clock, owner="A", lease_seconds=60)
    task = asyncio.create_task(worker_a.run_once())
    await asyncio.wait_for(slow.entered.wait(), timeout=10)
    clock.advance(61)
    rec = RecordingDeliverer()
    assert await make_worker(db, rec, clock, owner="B").run_once() == 1
    slow.release.set()
    assert await task == 0  # A's late result is dropped
    stored = await row(db, "a")
    assert stored.result == {"seq": 1} and stored.attempts == 1
    assert [e.kind for e in await events(db)] == ["outbox.delivered"]


async def test_two_workers_running_at_once_never_deliver_the_same_row_twice(
    db: Database,
) -> None:
    keys = [f"k{i:03d}" for i in range(60)]
    async with unit_of_work(db) as session:
        for i, key in enumerate(keys):
            rollout = i % 10 if i % 3 else None
            await outbox.enqueue(
                session, key=key, topic=TOPIC, payload={}, at=T0, rollout_id=rollout
            )
    clock = FakeClock()
    other_db = create_database(db.urls)  # a second process's own engine and pool
    shared = RecordingDeliverer(delay=0.001)
    workers = [
        make_worker(db, shared, clock, owner="A"),
        make_worker(other_db, shared, clock, owner="B"),
        make_worker(db, shared, clock, owner="C"),
    ]

    async def loop(worker: outbox.OutboxWorker) -> None:
        for _ in range(200):
            await worker.run_once(limit=5)
            async with read_only(worker.db) as session:
                if (await outbox.counts(session))["pending"] == 0:
                    return

    try:
        await asyncio.gather(*(loop(w) for w in workers))
    finally:
        await other_db.dispose()
    assert sorted(shared.keys) == keys
    assert all(n == 1 for n in shared.attempts.values())
    per_rollout: dict[int, list[str]] = {}
    for d in shared.delivered:
        if d.rollout_id is not None:
            per_rollout.setdefault(d.rollout_id, []).append(d.key)
    assert all(ks == sorted(ks) for ks in per_rollout.values())
    assert (await audit.verify_database(db)).count == len(keys)


async def test_run_delivers_until_stopped(db: Database) -> None:
    await put(db, "a")
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, interval=0.01))
    for _ in range(200):
        if rec.delivered:
            break
        await asyncio.sleep(0.01)
    await put(db, "b")
    for _ in range(200):
        if len(rec.delivered) == 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert rec.keys == ["a", "b"]
