"""The one time parser: ISO times, zones, relative forms, and clear errors."""

from __future__ import annotations

import datetime as dt

import pytest

from workflows.errors import InputError
from workflows.timeparse import format_both, parse_time

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", "2026-03-28T12:00:00+00:00"),
        ("in 2h", "2026-03-28T14:00:00+00:00"),
        ("in 1h30m", "2026-03-28T13:30:00+00:00"),
        ("in 2 hours", "2026-03-28T14:00:00+00:00"),
        ("in 1 day and 2h", "2026-03-29T14:00:00+00:00"),
        ("2026-12-06 02:00 Europe/Berlin", "2026-12-06T01:00:00+00:00"),
        ("2026-12-06T02:00 America/New_York", "2026-12-06T07:00:00+00:00"),
        ("2026-12-06 02:00", "2026-12-06T02:00:00+00:00"),  # default zone UTC
        ("2026-12-06T02:00+01:00", "2026-12-06T01:00:00+00:00"),
        ("2026-12-06T01:00Z", "2026-12-06T01:00:00+00:00"),
        ("2026-12-06", "2026-12-06T00:00:00+00:00"),
        ("13:15", "2026-03-28T13:15:00+00:00"),  # today
        ("11:00", "2026-03-29T11:00:00+00:00"),  # passed today: tomorrow
    ],
)
def test_times_are_read_in_their_zone_or_the_default(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW).isoformat() == expected


def test_a_time_without_a_zone_uses_patchgate_timezone() -> None:
    got = parse_time("2026-12-06 02:00", now=NOW, default_zone="Europe/Berlin")
    assert got == dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow", "cannot read it"),
        ("2026-13-01 02:00", "is not a date"),
        ("25:00", "is not a time of day"),
        ("in 0h", "more than zero"),
        ("in 2 parsecs", "cannot read the duration"),
        ("2026-12-06 02:00 Mars/Base", "unknown time zone 'Mars/Base'"),
        ("2026-03-29 02:30 Europe/Berlin", "does not exist in Europe/Berlin"),
        ("2026-10-25 02:30 Europe/Berlin", "happens twice in Europe/Berlin"),
        ("", "no time given"),
    ],
)
def test_a_bad_time_is_one_clear_usage_message(text: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_time(text, now=NOW)
    assert says in str(caught.value)
    assert "expected a time like" in str(caught.value)


def test_times_are_shown_in_the_plan_zone_and_in_utc() -> None:
    when = dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC)
    assert format_both(when, "Europe/Berlin") == "2026-12-06 02:00 Europe/Berlin (01:00 UTC)"
    assert format_both(when, "America/New_York") == (
        "2026-12-05 20:00 America/New_York (2026-12-06 01:00 UTC)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 3 days", "2026-03-31T12:00:00+00:00"),
        ("3d", "2026-03-31T12:00:00+00:00"),
        ("3 days", "2026-03-31T12:00:00+00:00"),
        ("1h30m", "2026-03-28T13:30:00+00:00"),
        ("30d ago", "2026-02-26T12:00:00+00:00"),
        ("2 hours ago", "2026-03-28T10:00:00+00:00"),
    ],
)
def test_bare_durations_and_ago_are_relative_to_now(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW).isoformat() == expected


def test_a_bare_number_without_a_unit_is_still_refused() -> None:
    with pytest.raises(InputError, match="cannot read"):
        parse_time("3", now=NOW)
