"""Queries over a whole fleet go in parts: each value of an ``IN (...)`` list is a bound
parameter, and SQLite takes at most 32,766 in a statement, PostgreSQL 65,535. A
100,000-host rollout stopped in `assessing` (its refresh read every host's row in one
query, which PostgreSQL refused) before these were split (issue 24)."""

from __future__ import annotations

import datetime as dt

import pytest

from workflows import assessment, queries
from workflows.db import IN_CHUNK, Database, in_parts, read_only, unit_of_work

PAST_EVERY_BOUND = 70_000  # past PostgreSQL's 65,535 parameters (and SQLite's 32,766)
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_in_parts_splits_in_order_and_gives_nothing_for_nothing() -> None:
    assert list(in_parts([])) == []
    parts = list(in_parts(range(2 * IN_CHUNK + 1)))
    assert [len(p) for p in parts] == [IN_CHUNK, IN_CHUNK, 1]
    assert [v for p in parts for v in p] == list(range(2 * IN_CHUNK + 1))


async def test_host_runs_and_assessments_are_read_for_a_fleet_past_the_drivers_bound(
    db: Database,
) -> None:
    names = [f"web-{i:06d}" for i in range(PAST_EVERY_BOUND)]
    async with read_only(db) as session:
        assert await queries.runs_by_id(session, run_ids=range(1, PAST_EVERY_BOUND)) == []
        assert await assessment.latest(session, hosts=names) == {}


@pytest.mark.parametrize("hosts", [33_000])
async def test_a_fleet_past_sqlites_bound_is_assessed_in_one_transaction(
    db: Database, hosts: int
) -> None:
    names = [f"web-{i:06d}" for i in range(hosts)]
    async with unit_of_work(db) as session:  # its DELETE names every host
        await assessment.store_many(session, [(n, []) for n in names], at=AT)
    async with read_only(db) as session:
        latest = await assessment.latest(session, hosts=names)
    assert len(latest) == hosts and all(found == [] for _, found in latest.values())
