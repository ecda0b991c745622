"""The hash-chained audit log: appends, verification and tampering, on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json

import pytest
import sqlalchemy as sa

from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.errors import AuditChainBroken
from workflows.models import AuditHead, Event

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


async def append_many(db: Database, n: int, *, start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + n):
        async with unit_of_work(db) as session:
            event = await audit.append(
                session,
                kind="rollout.transition",
                data={"i": i, "to": "running", "note": "é ✓"},
                at=T0 + dt.timedelta(seconds=i),
                actor="U123" if i % 2 else None,
                rollout_id=7 if i % 3 else None,
            )
            ids.append(event.id)
    return ids


async def verify(db: Database, **kwargs: object) -> audit.VerifyResult:
    async with read_only(db) as session:
        return await audit.verify(session, **kwargs)  # type: ignore[arg-type]


async def raw(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(sa.text(sql), params)


def test_canonical_json_sorts_keys_drops_spaces_and_writes_utc_z_times() -> None:
    when = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    text = audit.canonical_json({"b": 1, "a": [when, "ü"]})
    assert text == '{"a":["2026-03-29T01:30:00.000000Z","ü"],"b":1}'


def test_canonical_json_refuses_naive_datetimes_and_nan() -> None:
    with pytest.raises(ValueError, match="naive"):
        audit.canonical_json({"at": dt.datetime(2026, 1, 1)})
    with pytest.raises(ValueError):
        audit.canonical_json({"x": float("nan")})


async def test_a_chain_of_appends_verifies_and_the_head_names_its_last_event(db: Database) -> None:
    ids = await append_many(db, 25)
    result = await verify(db, chunk_size=7)  # several chunks
    assert result.count == 25
    assert result.last_seq == 25
    assert result.last_event_id == ids[-1]
    async with read_only(db) as session:
        head = await session.get(AuditHead, 1)
        events = (await session.scalars(sa.select(Event).order_by(Event.id))).all()
    assert head is not None and head.count == 25 and head.last_hash == events[-1].hash


async def test_each_hash_is_sha256_of_the_previous_hash_and_the_stored_body(db: Database) -> None:
    await append_many(db, 3)
    async with read_only(db) as session:
        events = (await session.scalars(sa.select(Event).order_by(Event.id))).all()
    prev = "0" * 64
    for seq, event in enumerate(events, start=1):
        assert event.prev_hash == prev
        assert event.hash == hashlib.sha256((prev + event.body).encode()).hexdigest()
        body = json.loads(event.body)
        assert body["seq"] == seq
        assert body["kind"] == event.kind == "rollout.transition"
        assert body["at"].endswith("Z")
        prev = event.hash


async def test_an_empty_log_verifies_with_zero_events(db: Database) -> None:
    result = await verify(db)
    assert result.count == 0 and result.last_event_id is None


async def test_an_append_in_a_rolled_back_transaction_leaves_no_trace(db: Database) -> None:
    await append_many(db, 2)
    with pytest.raises(RuntimeError):
        async with unit_of_work(db) as session:
            await audit.append(session, kind="x", data={}, at=T0)
            raise RuntimeError("the change failed")
    await append_many(db, 1, start=2)
    assert (await verify(db)).count == 3


async def test_editing_a_rows_body_is_caught_naming_that_row(db: Database) -> None:
    ids = await append_many(db, 10)
    target = ids[4]
    await raw(
        db,
        'UPDATE events SET body = replace(body, \'"to":"running"\', \'"to":"done"\')'
        " WHERE id = :id",
        id=target,
    )
    with pytest.raises(AuditChainBroken) as caught:
        await verify(db)
    assert caught.value.event_id == target
    assert str(caught.value) == f"event {target}: hash does not match its contents"


async def test_editing_a_mirrored_column_is_caught(db: Database) -> None:
    ids = await append_many(db, 4)
    await raw(db, "UPDATE events SET actor = 'U999' WHERE id = :id", id=ids[1])
    with pytest.raises(AuditChainBroken, match=f"event {ids[1]}: column actor"):
        await verify(db)


async def test_rewriting_a_row_and_its_hash_is_caught_at_the_next_row(db: Database) -> None:
    ids = await append_many(db, 5)
    async with read_only(db) as session:
        event = await session.get(Event, ids[2])
    assert event is not None
    body = event.body.replace('"to":"running"', '"to":"done"')
    await raw(
        db,
        "UPDATE events SET body = :body, hash = :hash WHERE id = :id",
        body=body,
        hash=audit.chain_hash(event.prev_hash, body),
        id=ids[2],
    )
    with pytest.raises(AuditChainBroken) as caught:
        await verify(db)
    assert str(caught.value) == f"event {ids[3]}: previous hash does not match event {ids[2]}"


async def test_deleting_a_middle_row_is_caught_at_the_row_after_it(db: Database) -> None:
    ids = await append_many(db, 10)
    await raw(db, "DELETE FROM events WHERE id = :id", id=ids[5])
    with pytest.raises(AuditChainBroken) as caught:
        await verify(db)
    assert caught.value.event_id == ids[6]
    assert str(caught.value) == f"event {ids[6]}: previous hash does not match event {ids[4]}"


async def test_deleting_the_last_row_is_caught_by_the_head(db: Database) -> None:
    ids = await append_many(db, 10)
    await raw(db, "DELETE FROM events WHERE id = :id", id=ids[-1])
    with pytest.raises(AuditChainBroken) as caught:
        await verify(db)
    assert caught.value.event_id == ids[-1]
    assert str(caught.value) == (
        "head says 10 events, chain has 9: the events after seq 9 were deleted (tail truncated)"
    )


async def test_appending_after_a_deleted_tail_does_not_hide_the_deletion(db: Database) -> None:
    ids = await append_many(db, 5)
    await raw(db, "DELETE FROM events WHERE id = :id", id=ids[-1])
    await append_many(db, 1, start=5)
    with pytest.raises(AuditChainBroken, match="previous hash does not match"):
        await verify(db)


async def test_a_slice_verifies_from_a_checkpoint(db: Database) -> None:
    ids = await append_many(db, 8)
    async with read_only(db) as session:
        cut = await session.get(Event, ids[2])
    assert cut is not None
    await raw(db, "DELETE FROM events WHERE id <= :id", id=ids[2])
    with pytest.raises(AuditChainBroken, match="previous hash does not match the genesis hash"):
        await verify(db)
    with pytest.raises(AuditChainBroken, match=r"does not match the checkpoint \(seq 2\)"):
        await verify(db, start=audit.Checkpoint(prev_hash="f" * 64, seq=2))
    result = await verify(db, start=audit.Checkpoint(prev_hash=cut.hash, seq=3))
    assert result.count == 5 and result.last_seq == 8


async def test_concurrent_appends_from_many_transactions_keep_a_valid_chain(db: Database) -> None:
    async def writer(w: int) -> None:
        for i in range(5):
            async with unit_of_work(db) as session:
                await audit.append(session, kind="w", data={"w": w, "i": i}, at=T0)
                await asyncio.sleep(0.002)  # hold the transaction open so writers overlap

    await asyncio.gather(*(writer(w) for w in range(8)))
    result = await audit.verify_database(db)
    assert result.count == 40 and result.last_seq == 40
    async with read_only(db) as session:
        bodies = (await session.scalars(sa.select(Event.body))).all()
    assert sorted((json.loads(b)["data"]["w"], json.loads(b)["data"]["i"]) for b in bodies) == [
        (w, i) for w in range(8) for i in range(5)
    ]
