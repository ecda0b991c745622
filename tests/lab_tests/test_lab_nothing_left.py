"""Issue 16 on real hosts (sshd, apt/dpkg, the lab's apt repository): a host with
nothing left to install settles and its rollout ends; an already patched first host no
longer empties the set for the others; an unreachable host inside the budget ends the
rollout ``succeeded_with_failures``.

On the code before issue 16 the first test never ends: the SSH executor's preflight
asked apt about an empty package list, the driver refused it, and the engine retried
the step every tick (here: ``run_until_idle`` gives up, or the time bound trips).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.enginekit import OPERATORS, REQUESTER, Rig
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.kit import LabRig, inventory_host, known_hosts, lab_plan
from tests.lab_tests.test_lab_engine import reset
from workflows import exceptions
from workflows.db import Database, read_only, unit_of_work
from workflows.gates import Actor
from workflows.models import Event, HostException, HostRun
from workflows.plans import PatchPlan


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    try:
        for i in range(3):
            host = lab.host(f"lab-n{i + 1}", 31 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


def install(host: LabHost, version: str) -> None:
    host.sh(
        "apt-get update -qq -o APT::Update::Error-Mode=any && "
        f"apt-get install -y -qq --allow-downgrades demo-app={version} >/dev/null",
        timeout=120,
    )


async def run(rig: Rig, plan: PatchPlan) -> int:
    rollout_id = await rig.start(plan)
    # bounded in ticks and time: the stuck engine of issue 16 loops forever
    await asyncio.wait_for(rig.engine().run_until_idle(max_ticks=60), 240)
    return rollout_id


async def test_a_package_exception_covering_the_only_pinned_package_settles_the_host(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    held, other = hosts[0], hosts[1]
    reset(lab, held, other)
    rig = LabRig(
        db,
        lab,
        [inventory_host(lab, held), inventory_host(lab, other)],
        known_hosts(tmp_path, hosts),
    )
    now = rig.clock.now()
    async with unit_of_work(db) as session:
        granted = await exceptions.grant(
            session,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            host=held.name,
            package="demo-app",
            owner="U0OWNER1",
            reason="vendor asked us to wait",
            expires_at=now + dt.timedelta(days=3),
            now=now,
            max_days=30,
        )
    assert isinstance(granted, HostException)

    rollout_id = await run(rig, lab_plan())

    assert await rig.host_states(rollout_id) == {held.name: "up_to_date", other.name: "healthy"}
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert held.installed("demo-app") == "1.0"
    assert held.dpkg_installs("demo-app", "1.1") == 0
    assert other.installed("demo-app") == "1.1"
    async with read_only(db) as session:
        run_row = await session.scalar(
            sa.select(HostRun).where(
                HostRun.rollout_id == rollout_id, HostRun.host_name == held.name
            )
        )
        settled = await session.scalar(sa.select(Event).where(Event.kind == "host.up_to_date"))
    assert run_row is not None
    assert run_row.left_over == {"demo-app": "held by a package exception"}
    assert settled is not None  # audited
    reason = (await rig.rollout(rollout_id)).reason or ""
    assert "1 host(s) not fully patched" in reason


async def test_an_already_patched_first_host_leaves_the_others_patched_too(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    first, second, third = hosts
    reset(lab, first, second, third)
    install(first, "1.1")  # patched by an earlier rollout that stopped part-way
    rig = LabRig(db, lab, [inventory_host(lab, h) for h in hosts], known_hosts(tmp_path, hosts))

    rollout_id = await run(rig, lab_plan(batch=3))

    states = await rig.host_states(rollout_id)
    assert states == {first.name: "up_to_date", second.name: "healthy", third.name: "healthy"}
    assert [h.installed("demo-app") for h in hosts] == ["1.1", "1.1", "1.1"]
    assert first.dpkg_installs("demo-app", "1.1") == 1  # only our own install above
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    assert rollout.patchset == {next(iter(rollout.patchset or {})): {"demo-app": "1.1"}}


async def test_an_unreachable_host_inside_the_budget_ends_succeeded_with_failures(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    up, down = hosts[0], hosts[1]
    reset(lab, up, down)
    down.stop_sshd()
    inventory = [inventory_host(lab, up), inventory_host(lab, down)]
    rig = LabRig(db, lab, inventory, known_hosts(tmp_path, hosts))

    rollout_id = await run(rig, lab_plan(budget=1))

    assert await rig.host_states(rollout_id) == {up.name: "healthy", down.name: "unreachable"}
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded_with_failures"
    assert f"1 host(s) failed within the failure budget: {down.name}" in (rollout.reason or "")


async def test_the_ssh_preflight_of_an_empty_set_answers_instead_of_refusing(
    lab: Lab, hosts: list[LabHost], db: Database, tmp_path: Path
) -> None:
    host = hosts[0]
    reset(lab, host)
    rig = LabRig(db, lab, [inventory_host(lab, host)], known_hosts(tmp_path, hosts))

    result = await rig.executor.preflight(inventory_host(lab, host), {})

    assert result.ok and result.problems == [] and result.unavailable == []
    assert result.rollback_material_missing == []
