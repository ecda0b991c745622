"""The leader's scheduled refresh: due only when some host's result is older than the
interval; hosts a rollout holds are left alone; unreachable hosts become gaps."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from bot.refresh import RefreshDeps, refresh
from bot.settings import Settings
from tests.enginekit import Rig
from workflows.db import Database, read_only, unit_of_work
from workflows.models import Host, HostAssessment, HostLease

HOUR = 3600.0


def deps_for(rig: Rig, db: Database) -> RefreshDeps:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return RefreshDeps(
        settings=settings, db=db, executor=rig.executor, inventory=rig.inventory, clock=rig.clock
    )


async def assessed_hosts(db: Database) -> list[str]:
    async with read_only(db) as session:
        return sorted(set(await session.scalars(sa.select(HostAssessment.host))))


async def test_an_assessment_run_is_skipped_until_some_host_is_older_than_the_interval(
    db: Database,
) -> None:
    rig = Rig(db)
    deps = deps_for(rig, db)
    names = sorted(h.name for h in rig.hosts)
    assert await refresh(deps, "assessment", interval=HOUR) == 0
    assert await assessed_hosts(db) == names
    calls = len(rig.executor.calls)
    rig.clock.advance(dt.timedelta(minutes=30))
    assert await refresh(deps, "assessment", interval=HOUR) is None  # a restart: not due
    assert len(rig.executor.calls) == calls
    rig.clock.advance(dt.timedelta(minutes=31))
    assert await refresh(deps, "assessment", interval=HOUR) == 0
    assert len(rig.executor.calls) > calls


async def test_leased_hosts_are_left_to_their_rollout_and_unreachable_ones_are_gaps(
    db: Database,
) -> None:
    rig = Rig(db)
    busy, down = rig.hosts[0].name, rig.hosts[1].name
    rollout_id = await rig.start()
    async with unit_of_work(db) as session:
        session.add(HostLease(host_name=busy, rollout_id=rollout_id))
    rig.executor.fail(down, "facts", "unreachable")
    assert await refresh(deps_for(rig, db), "discovery", interval=HOUR) == 1  # the down host
    assert not [c for c in rig.executor.calls if c[0] == busy]
    async with read_only(db) as session:
        row = (await session.scalars(sa.select(Host).where(Host.name == down))).one()
    assert row.reachable is False and row.last_error
