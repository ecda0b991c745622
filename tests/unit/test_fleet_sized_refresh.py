"""The scheduled refresh and the reads of host rows over a whole inventory go in parts:
each name of an ``IN (...)`` list is a bound parameter, and SQLite takes at most 32,766
in a statement, PostgreSQL 65,535. At 70,000 hosts the refresh's check for whether it is
due named every host in one query, which both refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from bot.refresh import Kind, RefreshDeps, refresh
from bot.settings import Settings
from integrations.testing.executor import RecordingExecutor
from tests.enginekit import StaticInventory
from workflows import queries
from workflows.clock import ManualClock
from workflows.db import IN_CHUNK, Database, read_only, unit_of_work
from workflows.models import Host, HostAssessment
from workflows.ports import InventoryHost

PAST_EVERY_BOUND = 70_000  # past PostgreSQL's 65,535 parameters (and SQLite's 32,766)
NOW = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
HOUR = 3600.0


def fleet() -> list[str]:
    return [f"web-{i:06d}" for i in range(PAST_EVERY_BOUND)]


async def insert(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    async with unit_of_work(db) as session:  # one multi-row INSERT: no ORM object a host
        await session.execute(sa.insert(table), rows)


@pytest.mark.parametrize("kind", ["discovery", "assessment"])
async def test_a_scheduled_refresh_of_a_fleet_past_the_drivers_bound_is_not_due_while_it_is_fresh(
    db: Database, kind: Kind
) -> None:
    names = fleet()
    # Every host refreshed 10 minutes ago but one (in the last part) 50 minutes ago: not
    # due with an hour's interval. A single host missed by the read would make it due.
    at = {name: NOW - dt.timedelta(minutes=10) for name in names}
    at[names[-1]] = NOW - dt.timedelta(minutes=50)
    if kind == "discovery":
        await insert(db, Host, [{"name": n, "facts_at": t} for n, t in at.items()])
    else:
        await insert(db, HostAssessment, [{"host": n, "assessed_at": t} for n, t in at.items()])
    executor = RecordingExecutor()
    deps = RefreshDeps(
        settings=Settings(_env_file=None),  # type: ignore[call-arg]
        db=db,
        executor=executor,
        inventory=StaticInventory([InventoryHost(name=n) for n in names]),
        clock=ManualClock(NOW),
    )
    assert await refresh(deps, kind, interval=HOUR) is None
    assert executor.calls == []  # no host asked


async def test_host_rows_are_read_by_name_for_a_fleet_past_the_drivers_bound(
    db: Database,
) -> None:
    names = fleet()
    stored = [names[0], names[IN_CHUNK - 1], names[IN_CHUNK], names[-1]]  # several parts
    await insert(db, Host, [{"name": n} for n in stored])
    async with read_only(db) as session:
        rows = await queries.hosts_by_name(session, names=[*reversed(names), names[0]])
    assert sorted(rows) == stored
    assert all(rows[n].name == n for n in stored)
