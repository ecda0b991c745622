"""bot/scheduler.py: APScheduler date jobs wake an idle engine at the database's due times.

The engine idles 60 s between ticks here; only a wake-up can make it act within
seconds of a due time. The clock is real time shifted to just before the window
opening, so a short real wait reaches it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import sqlalchemy as sa

from bot.scheduler import SchedulerDeps, build_scheduler, register_jobs, request_rebuild
from tests.enginekit import Rig, make_plan
from workflows import schedule as schedules
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.models import DueTime, Rollout

OPENING = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)  # the plan's daily 02:00 UTC window
IDLE = 60.0  # the engine's idle interval: far longer than the test waits
LEAD = 3.0  # real seconds from the scheduler's start to the opening
PROMPT = dt.timedelta(seconds=8)  # "at once", with room for a busy 2-core CI machine


class ShiftedClock:
    """Real time, shifted: ``now()`` moves with the wall clock from ``start``."""

    def __init__(self, start: dt.datetime) -> None:
        self._offset = start - dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self._offset


async def _first(db: Database, model: type[Rollout] | type[DueTime]) -> object | None:
    async with read_only(db) as session:
        return await session.scalar(sa.select(model).limit(1))


async def test_a_window_opening_wakes_the_idle_engine_long_before_its_next_tick(
    db: Database,
) -> None:
    rig = Rig(db)
    plan = make_plan(schedule={"cron": "0 2 * * *", "timezone": "UTC", "duration": "2h"})
    clock = ShiftedClock(OPENING - dt.timedelta(seconds=LEAD))
    scheduler = build_scheduler()
    engine: Engine
    wakes = SchedulerDeps(db=db, clock=clock, wake=lambda: engine.wake())
    engine = Engine(
        EngineDeps(
            db=db, executor=rig.executor, health=rig.health, inventory=rig.inventory, clock=clock,
            schedule=schedules.Schedules(
                plans=lambda: {plan.name: plan}, on_change=lambda: request_rebuild(scheduler, wakes)
            ),
        )
    )  # fmt: skip
    stop = asyncio.Event()
    register_jobs(scheduler, wakes)
    scheduler.start()
    task = asyncio.create_task(engine.run(stop, interval=IDLE))
    try:
        # The first tick writes the window's due row and the engine goes idle for 30 s.
        deadline = time.monotonic() + 15
        while await _first(db, DueTime) is None:
            assert time.monotonic() < deadline, "no window row"
            await asyncio.sleep(0.05)
        assert await _first(db, Rollout) is None
        while (rollout := await _first(db, Rollout)) is None:
            assert clock.now() < OPENING + PROMPT, "the engine was not woken"
            await asyncio.sleep(0.05)
        started = clock.now()
        assert isinstance(rollout, Rollout)
        assert rollout.created_at >= OPENING  # not before the opening...
        assert started - OPENING < PROMPT  # ...and long before the 60 s idle wait ends
    finally:
        stop.set()
        scheduler.shutdown(wait=False)
        await asyncio.wait_for(task, timeout=10)


async def test_without_the_scheduler_the_idle_engine_would_not_have_started_it_yet(
    db: Database,
) -> None:
    """The control: the same set-up, no scheduler, no rollout within the same wait."""
    rig = Rig(db)
    plan = make_plan(schedule={"cron": "0 2 * * *", "timezone": "UTC", "duration": "2h"})
    clock = ShiftedClock(OPENING - dt.timedelta(seconds=LEAD))
    engine = Engine(
        EngineDeps(
            db=db, executor=rig.executor, health=rig.health, inventory=rig.inventory, clock=clock,
            schedule=schedules.Schedules(plans=lambda: {plan.name: plan}),
        )
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop, interval=IDLE))
    try:
        deadline = time.monotonic() + 15
        while await _first(db, DueTime) is None:
            assert time.monotonic() < deadline, "no window row"
            await asyncio.sleep(0.05)
        await asyncio.sleep((OPENING + dt.timedelta(seconds=1) - clock.now()).total_seconds())
        assert await _first(db, Rollout) is None  # idle past the opening
        engine.wake()  # what a scheduler job does
        deadline = time.monotonic() + 5
        while await _first(db, Rollout) is None:
            assert time.monotonic() < deadline, "wake() did not cut the idle wait short"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
