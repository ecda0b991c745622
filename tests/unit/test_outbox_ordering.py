"""Outbox ordering that cannot wait in a circle (issue 16): a rollout's rows are ordered
among themselves per topic, a child waits for its parent (queued before or after it), a
dead parent takes its children with it, and ``outbox retry`` of the parent resumes them."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from integrations.testing.deliverers import RecordingDeliverer
from tests.unit.test_outbox_helpers import FakeClock, put, row
from workflows import audit, outbox
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import Conflict
from workflows.models import Event

TOPIC = "slack.post"


def make_worker(
    db: Database, rec: RecordingDeliverer, clock: FakeClock, **kw: object
) -> outbox.OutboxWorker:
    topics = {TOPIC: rec, "ticket": rec}
    return outbox.OutboxWorker(db, topics, clock=clock, owner="w", **kw)  # type: ignore[arg-type]


async def drain(worker: outbox.OutboxWorker, passes: int = 10) -> None:
    for _ in range(passes):
        await worker.run_once()


async def test_a_note_queued_before_its_parent_is_delivered_after_it_and_before_later_notes(
    db: Database,
) -> None:
    # freeze -> start -> unfreeze: the freeze's notes are queued before the parent message
    await put(db, "r1:freeze:held", rollout_id=1, parent_key="r1:parent")
    await put(db, "r1:freeze:lifted", rollout_id=1, parent_key="r1:parent")
    await put(db, "r1:parent", rollout_id=1)
    await put(db, "r1:ring:started", rollout_id=1, parent_key="r1:parent")
    rec, clock = RecordingDeliverer(), FakeClock()
    await drain(make_worker(db, rec, clock))
    assert rec.keys == ["r1:parent", "r1:freeze:held", "r1:freeze:lifted", "r1:ring:started"]
    for key in rec.keys:
        assert (await row(db, key)).state == "delivered"


async def test_a_row_of_another_topic_never_holds_up_a_rollouts_messages(db: Database) -> None:
    await put(db, "r1:ticket", topic="ticket", rollout_id=1)
    await put(db, "r1:parent", rollout_id=1)
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_transiently(key="r1:ticket", times=5, retry_after=3600)
    await drain(make_worker(db, rec, clock), passes=3)
    assert (await row(db, "r1:parent")).state == "delivered"
    assert (await row(db, "r1:ticket")).state == "pending"


async def test_a_dead_parent_takes_its_children_and_grandchildren_and_logs_a_warning(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await put(db, "p", rollout_id=1)
    await put(db, "c", rollout_id=1, parent_key="p")
    await put(db, "g", rollout_id=1, parent_key="c")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="p")
    with caplog.at_level(logging.WARNING, logger="patchgate.outbox"):
        await drain(make_worker(db, rec, clock), passes=2)
    p, c, g = await row(db, "p"), await row(db, "c"), await row(db, "g")
    assert (p.state, c.state, g.state) == ("dead", "dead", "dead")
    assert f"parent outbox row 'p' (id {p.id}) is dead" in (c.last_error or "")
    assert g.last_error == (
        f"parent outbox row 'c' (id {c.id}) is dead because 'p' (id {p.id}) is; "
        f"`patchgate outbox retry {p.id}` resumes them and then this row"
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in warned if " is dead: " in m] == [
        f"outbox row {p.id} (p, {TOPIC}) is dead: simulated permanent failure",
        f"outbox row {c.id} (c, {TOPIC}) is dead: {c.last_error}",
        f"outbox row {g.id} (g, {TOPIC}) is dead: {g.last_error}",
    ]


async def test_a_child_queued_after_its_parent_died_goes_dead_at_once(db: Database) -> None:
    await put(db, "p")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="p")
    worker = make_worker(db, rec, clock)
    await drain(worker, passes=1)
    await put(db, "late-child", parent_key="p")
    await drain(worker, passes=1)
    late = await row(db, "late-child")
    assert late.state == "dead" and "parent outbox row 'p'" in (late.last_error or "")


async def test_retry_of_the_parent_resumes_it_and_then_its_children_in_order(db: Database) -> None:
    await put(db, "p", rollout_id=1)
    await put(db, "c1", rollout_id=1, parent_key="p")
    await put(db, "c2", rollout_id=1, parent_key="p")
    await put(db, "g", rollout_id=1, parent_key="c1")
    rec, clock = RecordingDeliverer(), FakeClock()
    rec.fail_permanently(key="p")
    worker = make_worker(db, rec, clock)
    await drain(worker, passes=2)
    parent, child = await row(db, "p"), await row(db, "c1")
    with pytest.raises(Conflict, match=rf"parent 'p' \(id {parent.id}\), which is dead: retry"):
        async with unit_of_work(db) as session:
            await outbox.retry(session, item_id=child.id, at=clock.now)
    rec.clear_failures()
    async with unit_of_work(db) as session:
        await outbox.retry(session, item_id=parent.id, at=clock.now, actor="U0OPS")
    async with read_only(db) as session:
        states = {k: (await row(db, k)).state for k in ("p", "c1", "c2", "g")}
        retried = (
            await session.scalars(sa.select(Event).where(Event.kind == "outbox.retried"))
        ).one()
        await audit.verify(session)
    assert states == dict.fromkeys(("p", "c1", "c2", "g"), "pending")
    assert len(json.loads(retried.body)["data"]["waiting"]) == 3
    await drain(worker)
    assert rec.keys == ["p", "c1", "c2", "g"]


async def test_a_child_whose_parent_is_never_queued_goes_dead_after_the_grace_saying_so(
    db: Database,
) -> None:
    await put(db, "orphan", parent_key="never")
    await put(db, "other")
    rec, clock = RecordingDeliverer(), FakeClock()
    worker = make_worker(db, rec, clock, orphan_grace_seconds=3600)
    await drain(worker, passes=2)
    assert (await row(db, "orphan")).state == "pending" and rec.keys == ["other"]
    clock.advance(3601)
    await drain(worker, passes=1)
    orphan = await row(db, "orphan")
    assert (orphan.state, orphan.last_error) == (
        "dead",
        "parent outbox row 'never' was not queued within 1 h of this row",
    )


async def test_a_parent_chain_that_loops_goes_dead_instead_of_waiting_for_ever(
    db: Database,
) -> None:
    await put(db, "a", parent_key="b")
    await put(db, "b", parent_key="a")
    await drain(make_worker(db, RecordingDeliverer(), FakeClock()), passes=1)
    a, b = await row(db, "a"), await row(db, "b")
    assert a.state == b.state == "dead"
    assert a.last_error == "its parent chain loops: a -> b -> a"
    assert "parent outbox row 'a'" in (b.last_error or "")


class Listening(RecordingDeliverer):
    """A deliverer that hears of its dead rows (and can fail to)."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.broken = broken
        self.heard: list[tuple[str, str]] = []

    async def dead_lettered(self, item: outbox.DeliveryItem, error: str) -> None:
        self.heard.append((item.key, error))
        if self.broken:
            raise RuntimeError("could not tell anyone")


async def test_a_deliverer_hears_of_its_dead_rows_once_they_are_committed(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await put(db, "hopeless")
    await put(db, "fine")
    told, clock = Listening(), FakeClock()
    told.fail_transiently(key="hopeless", times=5)
    worker = make_worker(db, told, clock, max_attempts=2, base_backoff=1, max_backoff=1)
    for _ in range(3):
        await worker.run_once()
        clock.advance(2)
    assert told.heard == [("hopeless", "gave up after 2 attempts: simulated transient failure")]
    assert (await row(db, "hopeless")).state == "dead"

    await put(db, "doomed")
    broken = Listening(broken=True)
    broken.fail_permanently(key="doomed")
    with caplog.at_level(logging.WARNING, logger="patchgate.outbox"):
        await make_worker(db, broken, clock).run_once()
    assert broken.heard == [("doomed", "simulated permanent failure")]
    assert (await row(db, "doomed")).state == "dead"
    assert any("could not be told the row is dead" in r.getMessage() for r in caplog.records)
