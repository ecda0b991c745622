"""`patchgate rollout show` of a rollout past the drivers' bound of bound parameters:
the OS labels of its Windows and macOS hosts were read with every host of the rollout in
one ``IN (...)`` list, which PostgreSQL refused past 65,535 hosts."""

from __future__ import annotations

import argparse

import pytest
import sqlalchemy as sa

from bot.cli.rollout import show
from bot.settings import Settings
from workflows.db import Database, unit_of_work
from workflows.models import Host, HostRun, Ring, Rollout

PAST_EVERY_BOUND = 70_000  # past PostgreSQL's 65,535 parameters (and SQLite's 32,766)


async def test_a_rollout_of_a_fleet_past_the_drivers_bound_is_shown_with_its_windows_hosts(
    db: Database, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"web-{i:06d}" for i in range(PAST_EVERY_BOUND)]
    async with unit_of_work(db) as session:
        rollout = Rollout(
            plan_name="weekly",
            plan_hash="0" * 64,
            plan_snapshot={},
            state="succeeded",
            requested_by="U0OPERATOR",
        )
        session.add(rollout)
        await session.flush()
        ring = Ring(rollout_id=rollout.id, position=0, name="prod", state="done")
        session.add(ring)
        await session.flush()
        await session.execute(
            sa.insert(HostRun),
            [
                {"rollout_id": rollout.id, "ring_id": ring.id, "host_name": n, "state": "healthy"}
                for n in names
            ],
        )
        session.add(Host(name=names[-1], os_family="windows", build="22631.3007"))
        session.add(Host(name="win-elsewhere", os_family="windows", build="1"))  # not in it
        rollout_id = rollout.id
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    assert await show(argparse.Namespace(rollout_id=rollout_id, json=False), settings) == 0
    lines = capsys.readouterr().out.splitlines()
    labelled = [line.split()[0] for line in lines if "[windows build" in line]
    assert labelled == [names[-1]]
    assert sum(1 for line in lines if line.startswith("    web-")) == PAST_EVERY_BOUND
