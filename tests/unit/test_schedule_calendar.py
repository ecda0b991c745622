"""The leader's due times honour the blackout calendar (PATCHGATE_BLACKOUT_CALENDAR)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from tests.enginekit import Rig, make_plan
from workflows import schedule as schedules
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.models import DueTime

UTC = dt.UTC
# Every Monday, all day (UTC): a recurring blackout event.
CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//PatchGate tests//EN
BEGIN:VEVENT
UID:mondays@example.com
DTSTART;VALUE=DATE:20260105
DTEND;VALUE=DATE:20260106
RRULE:FREQ=WEEKLY
SUMMARY:Monday release day
END:VEVENT
END:VCALENDAR
"""


async def test_the_next_window_row_skips_days_the_calendar_blacks_out(
    db: Database, tmp_path: Path
) -> None:
    calendar = tmp_path / "blackouts.ics"
    calendar.write_text(CALENDAR)
    plan = make_plan(schedule={"cron": "0 2 * * *", "timezone": "UTC", "duration": "2h"})
    rig = Rig(db)
    rig.clock.set(dt.datetime(2026, 1, 11, 12, 0, tzinfo=UTC))  # a Sunday, after its window
    engine = Engine(
        EngineDeps(
            db=db, executor=rig.executor, health=rig.health, inventory=rig.inventory,
            clock=rig.clock,
            schedule=schedules.Schedules(plans=lambda: {plan.name: plan}, calendar=calendar),
        )
    )  # fmt: skip
    await engine.run_until_idle()
    async with read_only(db) as session:
        due = list(await session.scalars(sa.select(DueTime.due_at)))
    # Monday 2026-01-12 is blacked out: the next window is Tuesday's.
    assert [d.astimezone(UTC) for d in due] == [dt.datetime(2026, 1, 13, 2, 0, tzinfo=UTC)]
