"""Several audit appends in one transaction: one lock, one head read, one head write,
and the same chain one append per transaction would give."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.models import Event

T0 = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)


class Boom(Exception):
    pass


def head_statements(db: Database) -> Counter[str]:
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split()).lower()
        if "audit_head" in text:
            seen[text.split(" ", 1)[0]] += 1

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    return seen


async def test_a_transaction_of_many_appends_reads_and_writes_the_head_once(
    db: Database,
) -> None:
    async with unit_of_work(db) as session:
        await audit.append(session, kind="first", data={}, at=T0)
    seen = head_statements(db)
    async with unit_of_work(db) as session:
        for i in range(5):
            await audit.append(session, kind="many", data={"i": i}, at=T0, flush=False)
    assert seen == Counter({"select": 1, "update": 1})
    async with read_only(db) as session:
        result = await audit.verify(session)
        head = await audit.read_head(session)
    assert result.count == 6 and result.last_seq == 6
    assert head is not None and head.count == 6 and head.last_event_id == result.last_event_id


async def test_the_head_read_in_the_appending_transaction_includes_its_events(
    db: Database,
) -> None:
    async with unit_of_work(db) as session:
        for i in range(3):
            event = await audit.append(session, kind="x", data={"i": i}, at=T0, flush=False)
        head = await audit.read_head(session)
        assert head is not None
        assert (head.count, head.last_hash, head.last_event_id) == (3, event.hash, event.id)


async def test_a_rolled_back_transaction_leaves_the_head_and_chain_as_they_were(
    db: Database,
) -> None:
    async with unit_of_work(db) as session:
        await audit.append(session, kind="kept", data={}, at=T0)
    with pytest.raises(Boom):
        async with unit_of_work(db) as session:
            for i in range(3):
                await audit.append(session, kind="lost", data={"i": i}, at=T0, flush=False)
            raise Boom
    async with unit_of_work(db) as session:
        await audit.append(session, kind="after", data={}, at=T0, flush=False)
    async with read_only(db) as session:
        result = await audit.verify(session)
        kinds = list(await session.scalars(sa.select(Event.kind).order_by(Event.id)))
    assert result.count == 2 and result.last_seq == 2
    assert kinds == ["kept", "after"]
