"""Due times driven by a manual clock: windows open rollouts, missed windows never run
late, windows end mid-rollout, freezes hold and block, reminders, one-off runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from tests.enginekit import OPERATORS, REQUESTER, Rig, make_plan
from workflows import schedule as schedules
from workflows.db import Database, read_only, unit_of_work
from workflows.engine import Engine, EngineDeps
from workflows.errors import Forbidden
from workflows.gates import Actor
from workflows.models import DueTime, Freeze, OutboxItem, Rollout
from workflows.notify import TOPIC, notification_kind, parse_notification
from workflows.plans import PatchPlan

UTC = dt.UTC
# A daily window 02:00-04:00 UTC.
SCHEDULE = {"cron": "0 2 * * *", "timezone": "UTC", "duration": "2h"}


def scheduled_plan(**schedule: Any) -> PatchPlan:
    return make_plan(schedule={**SCHEDULE, **schedule})


def engine_for(rig: Rig, plan: PatchPlan) -> Engine:
    deps = EngineDeps(
        db=rig.db, executor=rig.executor, health=rig.health, inventory=rig.inventory,
        clock=rig.clock, schedule=schedules.Schedules(plans=lambda: {plan.name: plan}),
    )  # fmt: skip
    return Engine(deps)


async def rollouts(db: Database) -> list[Rollout]:
    async with read_only(db) as session:
        return list(await session.scalars(sa.select(Rollout).order_by(Rollout.id)))


async def notes(db: Database, kind: str) -> list[dict[str, Any]]:
    async with read_only(db) as session:
        rows = await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id))
        return [
            r.payload
            for r in rows
            if r.topic == TOPIC and notification_kind(parse_notification(r.payload)) == kind
        ]


async def test_a_rollout_starts_at_the_window_opening_and_not_before(db: Database) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    engine = engine_for(rig, scheduled_plan())
    await engine.run_until_idle()
    assert await rollouts(db) == []
    async with read_only(db) as session:
        due = list(await session.scalars(sa.select(DueTime)))
    assert [(d.kind, d.due_at.hour) for d in due] == [("window", 2)]
    rig.clock.set(dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    assert rollout.requested_by == "patchgate"
    assert rollout.window_end == dt.datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
    assert rollout.state == "awaiting_approval"  # dev ring done, staging gate open
    parent = (await notes(db, "rollout.parent"))[0]
    assert "window ends 2026-01-05 04:00 UTC" in parent["text"]


async def test_after_a_three_hour_outage_covering_the_window_nothing_starts_late(
    db: Database,
) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    engine = engine_for(rig, scheduled_plan())
    await engine.run_until_idle()  # the 02:00-04:00 window is now a due row
    # PatchGate is down from 01:30 to 04:30: the whole window passes.
    rig.clock.set(dt.datetime(2026, 1, 5, 4, 30, tzinfo=UTC))
    restarted = engine_for(rig, scheduled_plan())
    await restarted.run_until_idle()
    assert await rollouts(db) == []
    [missed] = await notes(db, "schedule.window_missed")
    assert missed["channel"] == "C0PATCHES"
    assert "was missed" in missed["text"] and "Nothing runs late" in missed["text"]
    assert "next window opens 2026-01-06 02:00 UTC" in missed["text"]
    # Ticking again changes nothing; the next window still starts on time.
    await restarted.run_until_idle()
    assert len(await notes(db, "schedule.window_missed")) == 1
    rig.clock.set(dt.datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    await restarted.run_until_idle()
    [rollout] = await rollouts(db)
    assert rollout.created_at == dt.datetime(2026, 1, 6, 2, 0, tzinfo=UTC)


async def test_a_long_outage_over_many_windows_gives_one_miss_and_no_burst(db: Database) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    await engine_for(rig, scheduled_plan()).run_until_idle()
    rig.clock.set(dt.datetime(2026, 1, 9, 5, 0, tzinfo=UTC))  # four windows passed
    await engine_for(rig, scheduled_plan()).run_until_idle()
    assert await rollouts(db) == []
    assert len(await notes(db, "schedule.window_missed")) == 1


async def test_a_window_still_open_at_start_up_is_used_only_with_enough_time_left(
    db: Database,
) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 3, 50, tzinfo=UTC))  # 10 minutes left < 15m
    await engine_for(rig, scheduled_plan()).run_until_idle()
    assert await rollouts(db) == []
    assert len(await notes(db, "schedule.window_missed")) == 1


async def test_no_batch_starts_after_the_window_ends_and_the_rollout_resumes_next_window(
    db: Database,
) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    plan = scheduled_plan()
    engine = engine_for(rig, plan)
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    gate = await rig.open_gate(rollout.id)
    assert gate is not None
    rig.clock.set(dt.datetime(2026, 1, 5, 3, 50, tzinfo=UTC))  # approval comes too late
    await rig.vote(gate, "U0APPROVE1")
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    assert rollout.state == "waiting_window"
    assert (await rig.host_states(rollout.id))["stg-01"] == "pending"
    [waiting] = await notes(db, "rollout.waiting")
    assert "no new batch starts" in waiting["text"]
    rig.clock.set(dt.datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    await engine.run_until_idle()
    [rollout] = await rollouts(db)  # the same rollout, not a new one
    assert rollout.window_end == dt.datetime(2026, 1, 6, 4, 0, tzinfo=UTC)
    states = await rig.host_states(rollout.id)
    assert states["stg-01"] == "healthy" and states["stg-02"] == "healthy"


async def test_a_plan_that_says_abort_aborts_when_the_window_ends(db: Database) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    plan = scheduled_plan(on_window_end="abort")
    engine = engine_for(rig, plan)
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    gate = await rig.open_gate(rollout.id)
    assert gate is not None
    rig.clock.set(dt.datetime(2026, 1, 5, 3, 55, tzinfo=UTC))
    await rig.vote(gate, "U0APPROVE1")
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    assert rollout.state == "aborted"
    assert "window ended" in (rollout.reason or "")


async def test_a_freeze_holds_a_running_rollout_blocks_windows_and_lifting_it_releases(
    db: Database,
) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 4, 12, 0, tzinfo=UTC))
    engine = engine_for(rig, scheduled_plan())
    manual = await rig.start(make_plan(name="adhoc"))
    async with unit_of_work(db) as session:
        frozen = await schedules.freeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, reason="incident 42",
            until=None, now=rig.clock.now(),
        )  # fmt: skip
    assert isinstance(frozen, Freeze)
    await engine.run_until_idle()
    held = (await rollouts(db))[0]
    assert held.id == manual and held.state == "scheduled"
    assert held.hold_reason == "change freeze: incident 42"
    rig.clock.set(dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    await engine.run_until_idle()
    assert len(await rollouts(db)) == 1  # the window was blocked
    [blocked] = await notes(db, "schedule.window_frozen")
    assert "change freeze (incident 42)" in blocked["text"]
    async with unit_of_work(db) as session:
        lifted = await schedules.unfreeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, now=rig.clock.now()
        )
    assert isinstance(lifted, list)
    await engine.run_until_idle()
    held = (await rollouts(db))[0]
    assert held.hold_reason is None and held.state == "awaiting_approval"


class StartDuringTick(schedules.Schedules):
    """The schedule's pass of a tick, then a rollout start committed by another process
    (a face) while the same tick goes on to step the active rollouts."""

    def __init__(self, rig: Rig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rig = rig
        self.started: int | None = None

    async def check(self, tx: Any, now: dt.datetime) -> bool:
        progressed = await super().check(tx, now)  # the freeze pass: nothing to hold yet
        if self.started is None:
            self.started = await self.rig.start(make_plan(name="adhoc"))
        return progressed


async def test_a_rollout_started_during_the_ticks_freeze_pass_is_held_before_any_work(
    db: Database,
) -> None:
    rig = Rig(db)
    async with unit_of_work(db) as session:
        frozen = await schedules.freeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, reason="incident 42",
            until=None, now=rig.clock.now(),
        )  # fmt: skip
    assert isinstance(frozen, Freeze)
    schedule = StartDuringTick(rig, plans=lambda: {})
    steps: list[str] = []
    deps = EngineDeps(
        db=db, executor=rig.executor, health=rig.health, inventory=rig.inventory,
        clock=rig.clock, schedule=schedule,
    )  # fmt: skip
    engine = Engine(deps, hook=steps.append)
    await engine.tick()  # the start lands after the freeze pass, before the steps
    assert schedule.started is not None
    held = await rig.rollout(schedule.started)
    assert (held.state, held.hold_reason) == ("scheduled", "change freeze: incident 42")
    assert held.started_at is None and held.patchset_hash is None
    assert "rollout.assessing" not in steps and "schedule.freeze" in steps
    assert await notes(db, "rollout.parent") == []  # no parent message queued
    await engine.run_until_idle()
    still = await rig.rollout(schedule.started)
    assert (still.state, still.started_at) == ("scheduled", None)
    async with unit_of_work(db) as session:
        lifted = await schedules.unfreeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, now=rig.clock.now()
        )
    assert isinstance(lifted, list)
    await engine.run_until_idle()
    released = await rig.rollout(schedule.started)
    assert released.hold_reason is None and released.state == "awaiting_approval"
    assert len(await notes(db, "rollout.parent")) == 1


async def test_a_non_operator_cannot_freeze(db: Database) -> None:
    async with unit_of_work(db) as session:
        refused = await schedules.freeze(
            session, actor=Actor("U0NOBODY"), operators=OPERATORS, reason="x", until=None,
            now=dt.datetime(2026, 1, 4, tzinfo=UTC),
        )  # fmt: skip
    assert isinstance(refused, Forbidden)
    async with read_only(db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Freeze)) == 0


async def test_gate_reminders_go_at_half_and_ninety_percent_of_the_timeout(db: Database) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 4, 12, 0, tzinfo=UTC))
    engine = engine_for(rig, make_plan())
    rollout_id = await rig.start()
    await engine.run_until_idle()  # staging gate open, 4h timeout
    assert await notes(db, "gate.reminder") == []
    rig.clock.set(dt.datetime(2026, 1, 4, 14, 0, tzinfo=UTC))
    await engine.run_until_idle()
    [half] = await notes(db, "gate.reminder")
    assert "<@U0APPROVE1>" in half["text"] and "50%" in half["text"]
    rig.clock.set(dt.datetime(2026, 1, 4, 15, 36, tzinfo=UTC))
    await engine.run_until_idle()
    assert [n["percent"] for n in await notes(db, "gate.reminder")] == [50, 90]
    async with read_only(db) as session:
        times = await schedules.wake_times(session, now=rig.clock.now())
    assert dt.datetime(2026, 1, 4, 16, 0, tzinfo=UTC) in times  # the gate's expiry
    assert (await rig.rollout(rollout_id)).state == "awaiting_approval"


async def test_a_one_off_run_starts_at_its_time_and_a_late_one_is_missed(db: Database) -> None:
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 4, 12, 0, tzinfo=UTC))
    plan = make_plan()  # no schedule
    engine = engine_for(rig, plan)
    async with unit_of_work(db) as session:
        for hour in (13, 20):
            row = await schedules.schedule_run(
                session, plan=plan, at=dt.datetime(2026, 1, 4, hour, 0, tzinfo=UTC),
                actor=Actor(REQUESTER), operators=OPERATORS, now=rig.clock.now(),
            )  # fmt: skip
            assert isinstance(row, DueTime)
    rig.clock.set(dt.datetime(2026, 1, 4, 13, 0, tzinfo=UTC))
    await engine.run_until_idle()
    [rollout] = await rollouts(db)
    assert rollout.requested_by == REQUESTER and rollout.window_end is None
    rig.clock.set(dt.datetime(2026, 1, 4, 21, 0, tzinfo=UTC))  # down at 20:00
    await engine.run_until_idle()
    assert len(await rollouts(db)) == 1
    assert len(await notes(db, "schedule.window_missed")) == 1
