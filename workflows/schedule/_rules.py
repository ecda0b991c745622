"""The schedule's constants and the small pure rules about a rollout's window that the engine
uses (may a batch start now, how the window's end is told).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Rollout
from workflows.plans import PatchPlan
from workflows.timeparse import format_both

ACTOR = "patchgate"
FREEZE_HOLDER = "freeze"  # Rollout.hold_by for holds a freeze set
ONE_OFF_GRACE = dt.timedelta(minutes=15)
REMINDER_FRACTIONS = (50, 90)
Tx = Callable[[str], AbstractAsyncContextManager[AsyncSession]]


def min_time(plan: PatchPlan) -> dt.timedelta:
    return plan.schedule.min_time_for_batch if plan.schedule else dt.timedelta(0)


def window_open(rollout: Rollout, plan: PatchPlan, now: dt.datetime) -> bool:
    """May a batch (or the start) of this rollout run now? Always, if it has no window."""
    return rollout.window_end is None or now + min_time(plan) <= rollout.window_end


def zone_of(plan: PatchPlan) -> str:
    return plan.schedule.timezone if plan.schedule else "UTC"


def window_suffix(rollout: Rollout, plan: PatchPlan) -> str:
    """For the parent message: when the rollout's window ends, in the plan's zone and UTC."""
    if rollout.window_end is None:
        return ""
    return f"; window ends {format_both(rollout.window_end, zone_of(plan))}"


def window_closed_text(rollout: Rollout, plan: PatchPlan, *, abort: bool) -> str:
    end = format_both(rollout.window_end, zone_of(plan)) if rollout.window_end else "?"
    if abort:
        return f"Rollout #{rollout.id} aborted: its window ended ({end}); the plan says abort"
    return (
        f"Window ended ({end}): no new batch starts; rollout #{rollout.id} waits for the "
        "plan's next window"
    )


def channel_of(plan: PatchPlan) -> str | None:
    """The plan's Slack channel, if it names one."""
    return plan.slack.channel if plan.slack else None
