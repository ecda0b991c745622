"""What blocks a plan's windows (its blackouts, the shared blackout calendar, freezes) and
the listing of its next windows with the blocked ones marked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from workflows.models import Freeze
from workflows.plans import PatchPlan
from workflows.schedule._windows import Period, Window, calendar_periods, plan_periods, upcoming

CALENDAR_HORIZON = dt.timedelta(days=400)


def blocking_periods(
    plan: PatchPlan, *, now: dt.datetime, calendar: Path | None, default_zone: str = "UTC"
) -> list[Period]:
    periods = plan_periods(plan)
    if calendar is not None:
        periods += calendar_periods(
            calendar, start=now - dt.timedelta(days=1), end=now + CALENDAR_HORIZON,
            default_zone=default_zone,
        )  # fmt: skip
    return sorted(periods, key=lambda p: p.start)


def freeze_period(row: Freeze) -> Period:
    return Period(row.started_at, row.until, row.reason, "freeze")


def list_windows(
    plan: PatchPlan,
    *,
    now: dt.datetime,
    calendar: Path | None = None,
    freezes: list[Freeze] = (),  # type: ignore[assignment]
    count: int = 5,
    default_zone: str = "UTC",
) -> list[Window]:
    """The next ``count`` windows of a plan, blacked-out or frozen ones marked."""
    if plan.schedule is None:
        return []
    periods = [freeze_period(f) for f in freezes] + blocking_periods(
        plan, now=now, calendar=calendar, default_zone=default_zone
    )
    return upcoming(plan.schedule, now=now, periods=periods, count=count)


@dataclass(frozen=True)
class Blockers:
    """Where the leader finds a plan's blocking periods: its blackouts and the calendar file."""

    calendar: Path | None = None
    default_zone: str = "UTC"

    def periods(self, plan: PatchPlan, now: dt.datetime) -> list[Period]:
        return blocking_periods(
            plan, now=now, calendar=self.calendar, default_zone=self.default_zone
        )
