from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from workflows.db import Database, read_only, unit_of_work
from workflows.models import Rollout


async def test_aware_datetimes_round_trip_as_utc(db: Database) -> None:
    when = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    async with unit_of_work(db) as session:
        session.add(
            Rollout(
                plan_name="p", plan_hash="h", plan_snapshot={}, requested_by="U1", started_at=when
            )
        )
    async with read_only(db) as session:
        got = (await session.scalars(sa.select(Rollout))).one()
    assert got.started_at == when
    assert got.started_at is not None and got.started_at.utcoffset() == dt.timedelta(0)


async def test_state_check_constraint_refuses_unknown_state(db: Database) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with unit_of_work(db) as session:
            session.add(
                Rollout(
                    plan_name="p",
                    plan_hash="h",
                    plan_snapshot={},
                    requested_by="U1",
                    state="exploded",
                )
            )
