"""Due times: the leader's calendar, kept in the database.

Every time at which the leader must act is a row (``due_times``): a plan's next window
opening, a one-off run, a reminder to a gate's approvers. Gate expiries, auto-gate soak
ends, exception expiries and freeze ends are times on their own rows. The APScheduler
jobs of ``bot/scheduler.py`` only *wake* the engine at those times; the engine's tick
calls :meth:`Schedules.check`, which does the work, so a lost wake-up is caught by the
next tick.

Rules:

* **Windows.** At a window's opening the plan's rollout is created (``scheduled``,
  bound to the window's end). A window is *missed* if, when PatchGate gets to it, less
  than ``schedule.min_time_for_batch`` of it is left: it is recorded and announced in
  the plan's channel and nothing runs late; the next row is the next window after
  *now* (never a burst of catch-up runs). A rollout still waiting from an earlier
  window is given the new window instead of a new rollout.
* **Freezes** hold every active rollout (at its next batch boundary) and block window
  openings and one-off runs while active; lifting one releases only the holds it set.
* **One-off runs** (``schedule run PLAN --at``) start a rollout at that time, bound to a
  window of the plan's duration if it has a schedule; one found more than
  ``ONE_OFF_GRACE`` late (or with too little window left) is missed like a window.
* **Reminders** go to a gate's approvers at 50% and 90% of its timeout; a reminder
  overtaken by a later one (after an outage) is skipped.

The room's modules: ``_windows`` (the pure window arithmetic), ``_calendar`` (what blocks
a window), ``_freezes``, ``_commands`` (one-off runs, reload requests), ``_loading`` (plan
reloads), ``_reminders``, ``_due`` (acting on due rows) and ``_schedules`` (the tick's
order). ``_rules`` holds the small pure rules the engine asks about a rollout's window.
"""

from __future__ import annotations

from workflows.schedule._calendar import list_windows
from workflows.schedule._commands import request_reload, schedule_run
from workflows.schedule._due import wake_times
from workflows.schedule._freezes import active_freeze, freeze, hold_for_freeze, unfreeze
from workflows.schedule._rules import window_closed_text, window_open, window_suffix, zone_of
from workflows.schedule._schedules import Schedules
from workflows.schedule._windows import (
    Period,
    Window,
    calendar_periods,
    next_window,
    openings,
    upcoming,
)

__all__ = [
    "Period",
    "Schedules",
    "Window",
    "active_freeze",
    "calendar_periods",
    "freeze",
    "hold_for_freeze",
    "list_windows",
    "next_window",
    "openings",
    "request_reload",
    "schedule_run",
    "unfreeze",
    "upcoming",
    "wake_times",
    "window_closed_text",
    "window_open",
    "window_suffix",
    "zone_of",
]
