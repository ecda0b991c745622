"""Window arithmetic: cron in an IANA zone, durations, blackouts, and the DST rules."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from workflows.plans import Schedule
from workflows.schedule import Period, calendar_periods, next_window, openings, upcoming

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def first(cron: str, zone: str, after: str, n: int = 3) -> list[str]:
    return [
        t.astimezone(ZoneInfo(zone)).isoformat()
        for t in itertools.islice(openings(cron, zone, after=at(after)), n)
    ]


def test_a_weekly_window_opens_at_the_wall_clock_time_in_its_zone() -> None:
    assert first("0 2 * * 0", "Europe/London", "2026-01-01T00:00+00:00", 2) == [
        "2026-01-04T02:00:00+00:00",
        "2026-01-11T02:00:00+00:00",
    ]
    # in summer the same wall-clock time is an hour earlier in UTC
    assert first("0 2 * * 0", "Europe/London", "2026-07-01T00:00+00:00", 1) == [
        "2026-07-05T02:00:00+01:00"
    ]


@pytest.mark.parametrize(
    ("zone", "night", "expected"),
    [
        ("Europe/Berlin", "2026-03-29", "2026-03-29T03:00:00+02:00"),
        ("America/New_York", "2026-03-08", "2026-03-08T03:00:00-04:00"),
    ],
)
def test_a_0230_window_on_a_spring_forward_night_opens_once_at_0300(
    zone: str, night: str, expected: str
) -> None:
    day_before = (dt.date.fromisoformat(night) - dt.timedelta(days=1)).isoformat()
    got = first("30 2 * * *", zone, f"{day_before}T12:00+00:00", 2)
    assert got[0] == expected
    assert got[1].startswith((dt.date.fromisoformat(night) + dt.timedelta(days=1)).isoformat())
    assert got[1][11:16] == "02:30"


def test_a_0230_window_on_the_berlin_fall_back_night_opens_once_at_the_first_0230() -> None:
    got = first("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00+00:00", 2)
    assert got == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]  # summer time


def test_a_0230_window_on_the_new_york_fall_back_night_opens_once() -> None:
    # New York's clocks go back at 02:00 (to 01:00): 02:30 happens once, on standard time
    got = first("30 2 * * *", "America/New_York", "2026-10-31T12:00+00:00", 2)
    assert got == ["2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"]


def test_the_new_york_0130_that_happens_twice_opens_once_at_its_first_occurrence() -> None:
    got = first("30 1 * * *", "America/New_York", "2026-10-31T12:00+00:00", 2)
    assert got == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_two_cron_times_in_the_same_gap_open_one_window() -> None:
    got = first("0,30 2 * * *", "Europe/Berlin", "2026-03-28T12:00+00:00", 2)
    assert got == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]


def test_a_window_lasts_its_duration_even_across_a_clock_change() -> None:
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin", duration="4h")
    window = upcoming(schedule, now=at("2026-03-28T12:00+00:00"), count=1)[0]
    assert window.end - window.start == dt.timedelta(hours=4)
    assert window.local()[1].isoformat() == "2026-03-29T07:00:00+02:00"


def test_the_window_open_now_comes_first_and_blackouts_block_overlapping_windows() -> None:
    schedule = Schedule(cron="0 2 * * *", timezone="UTC", duration="2h")
    blackout = Period(at("2026-01-06T00:00+00:00"), at("2026-01-07T00:00+00:00"), "release")
    windows = upcoming(schedule, now=at("2026-01-05T03:00+00:00"), periods=[blackout], count=3)
    assert [w.start.day for w in windows] == [5, 6, 7]
    assert [w.blocked for w in windows] == [False, True, False]
    assert windows[1].blocked_by == blackout
    nxt = next_window(
        schedule, now=at("2026-01-05T03:00+00:00"), periods=[blackout],
        opened_after=at("2026-01-05T02:00+00:00"),
    )  # fmt: skip
    assert nxt is not None and nxt.start == at("2026-01-07T02:00+00:00")


def test_an_open_ended_freeze_blocks_every_window_after_it_starts() -> None:
    schedule = Schedule(cron="0 2 * * *", timezone="UTC", duration="1h")
    freeze = Period(at("2026-01-05T12:00+00:00"), None, "incident", "freeze")
    assert next_window(schedule, now=at("2026-01-05T13:00+00:00"), periods=[freeze]) is None
    listed = upcoming(schedule, now=at("2026-01-05T13:00+00:00"), periods=[freeze], count=2)
    assert all(w.blocked_by is freeze for w in listed)


def test_recurring_calendar_blackouts_are_expanded(tmp_path: Path) -> None:
    ics = tmp_path / "blackouts.ics"
    ics.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        "BEGIN:VEVENT\r\nUID:1@test\r\nSUMMARY:Month-end close\r\n"
        "DTSTART;VALUE=DATE:20260131\r\nDTEND;VALUE=DATE:20260201\r\n"
        "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:2@test\r\nSUMMARY:Audit\r\n"
        "DTSTART:20260310T000000Z\r\nDTEND:20260312T000000Z\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    periods = calendar_periods(
        ics, start=at("2026-01-01T00:00+00:00"), end=at("2026-04-01T00:00+00:00"),
        default_zone="Europe/Berlin",
    )  # fmt: skip
    starts = [(p.reason, p.start.astimezone(ZoneInfo("Europe/Berlin")).date()) for p in periods]
    assert starts == [
        ("Month-end close", dt.date(2026, 1, 31)),
        ("Month-end close", dt.date(2026, 2, 28)),
        ("Audit", dt.date(2026, 3, 10)),
        ("Month-end close", dt.date(2026, 3, 31)),
    ]
    schedule = Schedule(cron="0 2 * * *", timezone="Europe/Berlin", duration="1h")
    windows = upcoming(schedule, now=at("2026-02-27T12:00+00:00"), periods=periods, count=2)
    assert [w.blocked for w in windows] == [True, False]  # Feb 28 blocked, Mar 1 not
