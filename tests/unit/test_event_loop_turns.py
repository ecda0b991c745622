"""Work over a whole fleet leaves the event loop turns in between (issue 24: during a
10,000-host rollout Slack's acks waited behind whole-fleet reads, a task per host of the
pre-pin refresh, and 50 hosts' commands answered at once): reads of every row go a part
at a time, the refresh goes through a few workers, and host commands give way to Slack
requests waiting for their answer."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from bot import heap
from bot.slack.deps import Quiet
from tests.enginekit import Rig, make_plan
from tests.unit.test_engine_gives_way import context, in_flight
from workflows.concurrency import in_turn
from workflows.db import Database, read_in_parts, read_only, unit_of_work
from workflows.models import Host
from workflows.ports import InventoryHost


async def add_hosts(db: Database, n: int) -> list[str]:
    names = [f"host-{i:05d}" for i in range(n)]
    async with unit_of_work(db) as session:
        await session.execute(sa.insert(Host), [{"name": name} for name in names])
    return names


class Ticker:
    """A task that counts the event loop's turns it gets."""

    def __init__(self) -> None:
        self.turns = 0
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)


async def test_a_whole_table_read_in_parts_lets_other_tasks_run_between_parts(
    db: Database,
) -> None:
    names = await add_hosts(db, 1_050)
    ticker = Ticker()
    at: list[int] = []

    def loaded(target: Any, context: Any) -> None:
        at.append(ticker.turns)

    event.listen(Host, "load", loaded)
    try:
        async with read_only(db) as session:
            rows = await read_in_parts(session, sa.select(Host).order_by(Host.name), part=100)
            got_all = [h.name for h in rows]
            parts_seen = len(set(at))
        at.clear()
        async with read_only(db) as session:
            await session.scalars(sa.select(Host))
            one_go = len(set(at))
    finally:
        event.remove(Host, "load", loaded)
        ticker.task.cancel()
    assert got_all == names  # every row, in the statement's order
    assert parts_seen >= 11  # the loop turned between the parts (1,050 rows / 100)
    assert one_go == 1  # what a plain read does: every object in one stretch


async def test_rows_not_scalars_come_whole(db: Database) -> None:
    await add_hosts(db, 3)
    async with read_only(db) as session:
        rows = await read_in_parts(
            session, sa.select(Host.name, Host.reachable).order_by(Host.name), scalars=False
        )
    assert [tuple(r) for r in rows] == [(f"host-{i:05d}", None) for i in range(3)]


async def test_the_refresh_assesses_a_fleet_through_as_many_workers_as_commands_run_at_once(
    db: Database,
) -> None:
    hosts = [InventoryHost(name=f"web-{i:03d}", groups=frozenset({"web"})) for i in range(120)]
    rig = Rig(db, hosts=hosts)
    real = rig.executor.list_upgradable
    alive: list[int] = []

    async def counted(host: InventoryHost) -> Any:
        alive.append(len(asyncio.all_tasks()))
        return await real(host)

    rig.executor.list_upgradable = counted  # type: ignore[method-assign]
    engine = rig.engine(concurrency=4)
    plan = make_plan(rings=[{"name": "all", "hosts": "group:web", "batch": "50%"}])
    rollout_id = await rig.start(plan)
    await asyncio.wait_for(engine.run_until_idle(), 60)
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    assert len(alive) >= 120  # the refresh asked every host
    # four workers and the test's own tasks; a task per host made it 120 and more
    assert max(alive) < 15


async def test_a_host_command_gives_way_to_a_slack_request_waiting_for_its_answer(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, quiet = in_flight(db, monkeypatch, 60.0)
    host = InventoryHost(name="web-1")
    ran: list[float] = []

    async def call() -> str:
        ran.append(asyncio.get_running_loop().time())
        return "done"

    command = asyncio.create_task(ctx.command(host, "facts", call))
    await asyncio.sleep(0.1)
    assert not ran  # the ack's turn first
    quiet.leave()
    result, error, record = await command
    assert (result, error, record["command"]) == ("done", None, "facts")
    result, error, record = await context(db, None).command(host, "facts", call)
    assert (result, error, record["host"], record["exit_code"]) == ("done", None, "web-1", None)


async def test_nothing_to_give_way_to_runs_a_command_at_once(db: Database) -> None:
    quiet = Quiet()
    ctx = context(db, quiet)

    async def call() -> int:
        return 7

    assert (await ctx.command(InventoryHost(name="h"), "facts", call))[0] == 7


def test_serve_collects_young_objects_less_often_than_cpython_does() -> None:
    before = gc.get_threshold()
    try:
        young, middle, old = heap.tune_collector()
        assert young == heap.YOUNG > before[0]
        assert (middle, old) == before[1:]
    finally:
        gc.set_threshold(*before)


async def test_work_in_turn_keeps_the_items_order_with_a_bounded_number_of_tasks() -> None:
    alive: list[int] = []

    async def work(i: int) -> int:
        alive.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0.001 * (i % 3))  # finish out of order
        return i * 10

    assert await in_turn(list(range(200)), work, workers=5) == [i * 10 for i in range(200)]
    assert max(alive) <= 6  # five workers and this test's task, not a task per item
    assert await in_turn([], work, workers=5) == []


async def test_an_error_in_turn_propagates_after_the_other_workers_go_on() -> None:
    done: list[int] = []

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if i == 3:
            raise ValueError("host 3")
        done.append(i)
        return i

    with pytest.raises(ValueError, match="host 3"):
        await in_turn(list(range(10)), work, workers=2)
    await asyncio.sleep(0.05)
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # as gather: the others finish
