"""The outbox's producer and operator side: enqueue, list, retry, counts; the deliverers."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from integrations.logging_notifier import LoggingDeliverer
from integrations.testing.deliverers import RecordingDeliverer
from tests.unit.test_outbox_helpers import T0, FakeClock, put, row
from workflows import audit, outbox
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import (
    Conflict,
    NotFound,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from workflows.models import Event, OutboxItem


def item(key: str = "k1", topic: str = "slack.post", **payload: object) -> outbox.DeliveryItem:
    return outbox.DeliveryItem(
        id=1, key=key, topic=topic, payload=payload, rollout_id=None, parent=None, attempts=0
    )


async def test_enqueue_is_idempotent_by_key(db: Database) -> None:
    first = await put(db, "r1:started", text="first")
    second = await put(db, "r1:started", text="second")
    assert first is not None and first.id > 0 and first.state == "pending"
    assert second is None
    async with read_only(db) as session:
        rows = (await session.scalars(sa.select(OutboxItem))).all()
    assert [(r.key, r.payload) for r in rows] == [("r1:started", {"text": "first"})]


async def test_enqueue_twice_in_one_transaction_keeps_the_first(db: Database) -> None:
    async with unit_of_work(db) as session:
        a = await outbox.enqueue(session, key="k", topic="t", payload={"n": 1}, at=T0)
        b = await outbox.enqueue(session, key="k", topic="t", payload={"n": 2}, at=T0)
    assert a is not None and b is None
    assert (await row(db, "k")).payload == {"n": 1}


async def test_enqueue_sets_the_row_due_at_the_given_time(db: Database) -> None:
    created = await put(db, "k", rollout_id=4, parent_key="p")
    assert created is not None
    stored = await row(db, "k")
    assert stored.next_attempt_at == T0 and stored.rollout_id == 4 and stored.parent_key == "p"
    assert stored.attempts == 0 and stored.lease_owner is None


async def test_rows_enqueued_in_a_rolled_back_transaction_are_never_delivered(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(db) as session:
            await outbox.enqueue(session, key="ghost", topic="slack.post", payload={}, at=T0)
            raise RuntimeError("the state change failed")
    recorder = RecordingDeliverer()
    worker = outbox.OutboxWorker(db, {"slack.post": recorder}, clock=FakeClock(), owner="w")
    assert await worker.run_once() == 0
    assert recorder.delivered == [] and recorder.attempts == {}
    async with read_only(db) as session:
        assert (await outbox.counts(session)) == {"pending": 0, "delivered": 0, "dead": 0}


async def test_list_items_filters_by_state_newest_first(db: Database) -> None:
    for key in ("a", "b", "c"):
        await put(db, key)
    async with unit_of_work(db) as session:
        await session.execute(
            sa.update(OutboxItem).where(OutboxItem.key == "b").values(state="dead")
        )
    async with read_only(db) as session:
        everything = await outbox.list_items(session)
        dead = await outbox.list_items(session, state="dead")
        first_two = await outbox.list_items(session, limit=2)
        with pytest.raises(ValueError):
            await outbox.list_items(session, state="lost")
    assert [i.key for i in everything] == ["c", "b", "a"]
    assert [i.key for i in dead] == ["b"]
    assert [i.key for i in first_two] == ["c", "b"]


async def test_counts_reports_every_state(db: Database) -> None:
    for key in ("a", "b", "c"):
        await put(db, key)
    async with unit_of_work(db) as session:
        await session.execute(
            sa.update(OutboxItem).where(OutboxItem.key == "a").values(state="delivered")
        )
    async with read_only(db) as session:
        assert await outbox.counts(session) == {"pending": 2, "delivered": 1, "dead": 0}


async def test_retry_revives_a_dead_row_and_records_it_in_the_audit_log(db: Database) -> None:
    await put(db, "a")
    async with unit_of_work(db) as session:
        await session.execute(
            sa.update(OutboxItem).values(state="dead", attempts=12, last_error="boom")
        )
    stored = await row(db, "a")
    later = T0.replace(hour=5)
    async with unit_of_work(db) as session:
        revived = await outbox.retry(session, item_id=stored.id, at=later, actor="U42")
    assert revived.state == "pending" and revived.attempts == 0
    again = await row(db, "a")
    assert (again.state, again.attempts, again.next_attempt_at) == ("pending", 0, later)
    async with read_only(db) as session:
        events = (await session.scalars(sa.select(Event))).all()
        await audit.verify(session)
    assert [(e.kind, e.actor) for e in events] == [("outbox.retried", "U42")]


async def test_retry_refuses_a_row_that_is_not_dead_and_an_unknown_id(db: Database) -> None:
    await put(db, "a")
    stored = await row(db, "a")
    with pytest.raises(Conflict, match="is pending; only dead rows can be retried"):
        async with unit_of_work(db) as session:
            await outbox.retry(session, item_id=stored.id, at=T0)
    with pytest.raises(NotFound, match="outbox row 999999 does not exist"):
        async with unit_of_work(db) as session:
            await outbox.retry(session, item_id=999999, at=T0)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    for attempts, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (12, 600.0), (40, 600.0)):
        for _ in range(50):
            delay = outbox.backoff_delay(attempts, base=2.0, cap=600, rng=rng)
            assert ceiling / 2 <= delay <= ceiling


# --- the deliverers ---------------------------------------------------------------------------


async def test_logging_deliverer_logs_the_text_and_reports_it_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="patchgate.notify")
    delivery = await LoggingDeliverer().deliver(item("r1:gate", text="ring canary needs approval"))
    assert delivery.data == {"logged": True, "key": "r1:gate"}
    assert any(
        r.levelno == logging.INFO and "ring canary needs approval" in r.getMessage()
        for r in caplog.records
    )


async def test_recording_deliverer_numbers_deliveries_and_fails_on_request() -> None:
    rec = RecordingDeliverer()
    rec.fail_transiently(key="a", times=2, retry_after=30)
    rec.fail_permanently(topic="jira.create", message="400")
    for _ in range(2):
        with pytest.raises(TransientDeliveryError) as caught:
            await rec.deliver(item("a"))
        assert caught.value.retry_after == 30
    with pytest.raises(PermanentDeliveryError, match="400"):
        await rec.deliver(item("t", topic="jira.create"))
    assert (await rec.deliver(item("a", text="hi"))).data == {"seq": 1}
    assert (await rec.deliver(item("b"))).data == {"seq": 2}
    assert rec.keys == ["a", "b"]
    assert rec.attempts == {"a": 3, "t": 1, "b": 1}
    assert rec.for_key("a")[0].payload == {"text": "hi"}
    with pytest.raises(ValueError):
        rec.fail_permanently()
