"""The replay guard: the database is the truth across replicas, memory only saves a trip,
and a burst of new signatures is written in a few batched statements."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa

from bot.slack.security import KEEP, PRUNE_EVERY, ReplayGuard
from workflows.clock import SystemClock
from workflows.db import Database, read_only, unit_of_work
from workflows.models import SeenSignature


class FixedClock:
    def __init__(self, now: dt.datetime) -> None:
        self.at = now

    def now(self) -> dt.datetime:
        return self.at


async def _stored(db: Database) -> set[str]:
    async with read_only(db) as session:
        return set(await session.scalars(sa.select(SeenSignature.signature)))


async def test_a_signature_seen_by_one_replica_is_a_replay_for_another(db: Database) -> None:
    first, second = ReplayGuard(db, SystemClock()), ReplayGuard(db, SystemClock())
    assert await first.first_sighting("v0=aaa") is True
    assert await second.first_sighting("v0=aaa") is False, "refused from the shared table"
    assert await first.first_sighting("v0=aaa") is False
    assert await _stored(db) == {"v0=aaa"}


async def test_memory_refuses_without_the_database_but_only_for_this_replica(
    db: Database,
) -> None:
    here, elsewhere = ReplayGuard(db, SystemClock()), ReplayGuard(db, SystemClock())
    assert await here.first_sighting("v0=bbb") is True
    async with unit_of_work(db) as session:  # the row gone: only memory still knows
        await session.execute(sa.delete(SeenSignature))
    batches = here.batches
    assert await here.first_sighting("v0=bbb") is False
    assert here.batches == batches, "answered from memory, no write"
    assert await elsewhere.first_sighting("v0=bbb") is True, "the table is the truth"


async def test_a_burst_is_written_in_a_few_batches_and_duplicates_in_it_are_refused(
    db: Database,
) -> None:
    guard = ReplayGuard(db, SystemClock())
    signatures = [f"v0={i:04d}" for i in range(50)] + ["v0=0007", "v0=0042"]
    results = await asyncio.gather(*(guard.first_sighting(s) for s in signatures))
    assert results.count(True) == 50
    assert [s for s, ok in zip(signatures, results, strict=True) if not ok] == [
        "v0=0007",
        "v0=0042",
    ]
    assert guard.batches <= 3, guard.batches
    assert await _stored(db) == set(signatures)


async def test_rows_older_than_the_window_are_pruned_at_most_once_a_minute(
    db: Database,
) -> None:
    start = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    clock = FixedClock(start)
    ticks = [0.0]
    guard = ReplayGuard(db, clock, monotonic=lambda: ticks[0])
    assert await guard.first_sighting("v0=old") is True
    clock.at = start + KEEP + dt.timedelta(seconds=1)
    ticks[0] = 1.0  # within a minute of the last prune: kept
    assert await guard.first_sighting("v0=new") is True
    assert await _stored(db) == {"v0=old", "v0=new"}
    ticks[0] = PRUNE_EVERY + 1.0
    assert await guard.first_sighting("v0=newer") is True
    assert await _stored(db) == {"v0=new", "v0=newer"}
