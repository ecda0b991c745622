"""Patch-window arithmetic: pure functions of a schedule, blocking periods and ``now``.

A plan's ``schedule`` (5-field cron, IANA zone, duration) opens a window at every
cron match, read as a *wall-clock* time in the zone. Daylight-saving rules (the same
for every zone; tested for Europe/Berlin and America/New_York):

* **Spring forward** (a wall time that does not exist, e.g. 02:30 on the night the
  clocks jump from 02:00 to 03:00): the window opens once, at the first wall-clock
  time that exists after it (03:00 local), and lasts its full duration from there.
* **Fall back** (a wall time that happens twice, e.g. 02:30 on the night the clocks go
  from 03:00 back to 02:00): the window opens once, at the first occurrence (the
  earlier instant, still on summer time).
* Two cron matches that land on the same instant (``0 2`` and ``30 2`` on a
  spring-forward night both become 03:00) open one window.

A window is **blocked** when it overlaps any blocking period (a plan blackout, an
event of the blackout calendar, a change freeze): it does not open at all. Windows
are returned in UTC; :meth:`Window.local` gives them in the plan's zone.

Nothing here reads a clock or a file except :func:`calendar_periods`, which parses an
iCalendar file (recurring events expanded by ``recurring_ical_events``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from workflows.errors import InputError
from workflows.plans import PatchPlan, Schedule

__all__ = [
    "Period",
    "Window",
    "calendar_periods",
    "next_window",
    "openings",
    "plan_periods",
    "upcoming",
]

# Wall-clock gaps are at most a few hours (zones that skipped a whole day are far in
# the past); this bounds the search for the first existing minute after a gap.
_MAX_GAP = dt.timedelta(hours=3)
_MAX_OPENINGS = 100_000  # a safety bound for iterating past many blocked windows


@dataclass(frozen=True)
class Period:
    """A period that blocks windows: ``end`` None means until lifted (a freeze)."""

    start: dt.datetime
    end: dt.datetime | None
    reason: str
    kind: str = "blackout"  # blackout | calendar | freeze

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and (self.end is None or start < self.end)

    def describe(self) -> str:
        return f"{self.kind}: {self.reason}"


@dataclass(frozen=True)
class Window:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    timezone: str
    blocked_by: Period | None = None

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    def local(self) -> tuple[dt.datetime, dt.datetime]:
        zone = ZoneInfo(self.timezone)
        return self.start.astimezone(zone), self.end.astimezone(zone)

    def is_open(self, now: dt.datetime) -> bool:
        return self.start <= now < self.end

    def describe(self) -> str:
        """``Sun 2026-01-04 02:00-06:00 Europe/London (02:00-06:00 UTC)``."""
        ls, le = self.local()
        us, ue = self.start.astimezone(dt.UTC), self.end.astimezone(dt.UTC)
        return (
            f"{ls:%a %Y-%m-%d %H:%M}-{_end(ls, le)} {self.timezone} "
            f"({us:%Y-%m-%d %H:%M}-{_end(us, ue)} UTC)"
        )


def _end(start: dt.datetime, end: dt.datetime) -> str:
    return f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"


def _exists(wall: dt.datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return back == wall


def resolve_wall_time(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant a naive wall-clock time stands for, by the rules above."""
    probe = wall
    while not _exists(probe, zone):
        probe += dt.timedelta(minutes=1)
        if probe - wall > _MAX_GAP:  # pragma: no cover - no such zone today
            raise ValueError(f"{wall} in {zone.key}: no existing time within {_MAX_GAP}")
    if probe != wall:  # a gap: the first minute that exists, at its minute boundary
        probe = probe.replace(second=0, microsecond=0)
    return probe.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def openings(cron: str, timezone: str, *, after: dt.datetime) -> Iterator[dt.datetime]:
    """Window openings (UTC, increasing, each once) strictly after ``after``."""
    from croniter import CroniterBadDateError, croniter

    zone = ZoneInfo(timezone)
    # Start a little before ``after`` in wall-clock time: a gap or a fold may move a
    # wall time that is earlier than ``after``'s to an instant later than it.
    local_after = after.astimezone(zone).replace(tzinfo=None) - _MAX_GAP
    walls = croniter(cron, local_after)
    last: dt.datetime | None = None
    for _ in range(_MAX_OPENINGS):
        try:
            wall = walls.get_next(dt.datetime)
        except CroniterBadDateError:  # a cron that never matches again
            return
        instant = resolve_wall_time(wall, zone)
        if instant <= after or (last is not None and instant <= last):
            continue
        last = instant
        yield instant


def _blocker(start: dt.datetime, end: dt.datetime, periods: Sequence[Period]) -> Period | None:
    return next((p for p in periods if p.overlaps(start, end)), None)


def _windows(
    schedule: Schedule, *, since: dt.datetime, periods: Sequence[Period]
) -> Iterator[Window]:
    """Every window whose end is after ``since`` (so one open at ``since`` included)."""
    for start in openings(schedule.cron, schedule.timezone, after=since - schedule.duration):
        end = start + schedule.duration
        if end <= since:
            continue
        yield Window(start, end, schedule.timezone, _blocker(start, end, periods))


def upcoming(
    schedule: Schedule, *, now: dt.datetime, periods: Sequence[Period] = (), count: int = 5
) -> list[Window]:
    """The next ``count`` windows (the one open at ``now`` first), blocked ones included."""
    out: list[Window] = []
    for window in _windows(schedule, since=now, periods=periods):
        out.append(window)
        if len(out) >= count:
            break
    return out


def next_window(
    schedule: Schedule,
    *,
    now: dt.datetime,
    periods: Sequence[Period] = (),
    opened_after: dt.datetime | None = None,
) -> Window | None:
    """The first window that is not blocked, has not ended at ``now`` and (if given)
    opens after ``opened_after`` (the last window already dealt with)."""
    for window in _windows(schedule, since=now, periods=periods):
        if opened_after is not None and window.start <= opened_after:
            continue
        if not window.blocked:
            return window
    return None


def plan_periods(plan: PatchPlan) -> list[Period]:
    return [Period(b.start, b.end, b.reason, "blackout") for b in plan.blackouts]


def calendar_periods(
    path: Path, *, start: dt.datetime, end: dt.datetime, default_zone: str = "UTC"
) -> list[Period]:
    """Blackout events of an iCalendar file that overlap [start, end), recurring ones
    expanded. All-day events cover whole days in ``default_zone``; floating times are
    read in it too. A missing or unreadable file is an InputError naming the path."""
    import icalendar
    import recurring_ical_events

    try:
        calendar = icalendar.Calendar.from_ical(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the blackout calendar ({exc})") from exc
    zone = ZoneInfo(default_zone)
    periods: list[Period] = []
    for event in recurring_ical_events.of(calendar).between(start, end):
        begin = _instant(event.get("DTSTART").dt, zone)
        finish_prop = event.get("DTEND")
        if finish_prop is not None:
            finish = _instant(finish_prop.dt, zone)
        else:
            duration = event.get("DURATION")
            span = duration.dt if duration is not None else dt.timedelta(days=1)
            finish = begin + span
        summary = str(event.get("SUMMARY") or "calendar blackout")
        periods.append(Period(begin, finish, summary, "calendar"))
    periods.sort(key=lambda p: p.start)
    return periods


def _instant(value: dt.date | dt.datetime, zone: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return resolve_wall_time(value, zone)
        return value.astimezone(dt.UTC)
    return resolve_wall_time(dt.datetime(value.year, value.month, value.day), zone)


def merge(*groups: Iterable[Period]) -> list[Period]:
    return sorted((p for group in groups for p in group), key=lambda p: p.start)
