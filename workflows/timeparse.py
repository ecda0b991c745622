"""The one parser for times typed by people (CLI and Slack), pure given ``now``.

Accepted forms (case-insensitive, surrounding spaces ignored)::

    now
    in 2h · in 90m · in 1h30m · in 2 hours · in 45 minutes · in 1 day · in 3 days
    3d · 2h · 1h30m · 3 days            (a bare duration: that long from now)
    3 days ago · 12h ago                (that long before now)
    2026-12-06 02:00 · 2026-12-06T02:00 · 2026-12-06 02:00:30 · 2026-12-06
    02:00                                   (the next time the clock shows 02:00)
    …any of the above followed by an IANA zone: 2026-12-06 02:00 Europe/Berlin
    2026-12-06T02:00+01:00 · 2026-12-06T01:00Z  (an explicit UTC offset)

A time without a zone or offset is read in ``default_zone`` (``PATCHGATE_TIMEZONE``).
A wall-clock time that does not exist (skipped by a spring-forward) or that happens
twice (a fall-back) is refused with a message that says so and how to be exact.
Errors are :class:`~workflows.errors.InputError` with a usage hint.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.errors import InputError

USAGE = (
    'expected a time like "2026-12-06 02:00", "2026-12-06 02:00 Europe/Berlin", '
    '"2026-12-06T02:00+01:00", "02:00", "in 3 days", "3d" or "2h ago"'
)

_RELATIVE = re.compile(r"^in\s+(?P<body>.+)$", re.IGNORECASE)
_AGO = re.compile(r"^(?P<body>.+?)\s+ago$", re.IGNORECASE)
_BARE = re.compile(r"^\d+\s*[a-z]", re.IGNORECASE)  # "3d", "3 days": a duration from now
_UNIT = re.compile(
    r"(?P<n>\d+)\s*(?P<unit>days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)(?![a-z])",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DATE = r"\d{4}-\d{2}-\d{2}"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_LOCAL = re.compile(
    rf"^(?P<date>{_DATE})?(?:(?:^|[T ])(?P<clock>{_CLOCK}))?(?:\s+(?P<zone>[A-Za-z_+\-/0-9]+))?$"
)


def _error(text: str, why: str) -> InputError:
    return InputError(f"bad time {text!r}: {why}; {USAGE}")


def _zone(name: str, text: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _error(
            text, f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def _relative(body: str, text: str) -> dt.timedelta:
    compact = body.strip()
    total, pos = 0, 0
    for match in _UNIT.finditer(compact):
        if compact[pos : match.start()].strip(" ,and"):
            raise _error(text, "cannot read the duration")
        total += int(match["n"]) * _UNIT_SECONDS[match["unit"][0].lower()]
        pos = match.end()
    if pos == 0 or compact[pos:].strip():
        raise _error(text, "cannot read the duration")
    if total <= 0:
        raise _error(text, "the duration must be more than zero")
    return dt.timedelta(seconds=total)


def _localise(wall: dt.datetime, zone: ZoneInfo, text: str) -> dt.datetime:
    early = wall.replace(tzinfo=zone, fold=0)
    late = wall.replace(tzinfo=zone, fold=1)
    if early.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise _error(
            text,
            f"{wall:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip it); "
            "pick a time after the change",
        )
    if early.utcoffset() != late.utcoffset():
        raise _error(
            text,
            f"{wall:%Y-%m-%d %H:%M} happens twice in {zone.key} (the clocks go back); "
            "give a UTC offset, e.g. 2026-10-25T02:30+02:00",
        )
    return early.astimezone(dt.UTC)


def parse_time(text: str, *, now: dt.datetime, default_zone: str = "UTC") -> dt.datetime:
    """The UTC instant ``text`` names. Raises InputError with a usage hint."""
    raw = text
    text = " ".join(text.split())
    if not text:
        raise _error(raw, "no time given")
    if text.lower() == "now":
        return now.astimezone(dt.UTC)
    relative = _RELATIVE.match(text)
    if relative:
        return now.astimezone(dt.UTC) + _relative(relative["body"], raw)
    ago = _AGO.match(text)
    if ago:
        return now.astimezone(dt.UTC) - _relative(ago["body"], raw)
    if _BARE.match(text) and not re.match(rf"^{_DATE}", text):
        return now.astimezone(dt.UTC) + _relative(text, raw)
    # An explicit offset (or Z): ISO 8601 as Python reads it.
    if re.search(r"(Z|[+-]\d{2}:?\d{2})$", text) and re.match(rf"^{_DATE}[T ]", text):
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _error(raw, "not a valid date and time") from None
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC)
    match = _LOCAL.match(text)
    if not match or not (match["date"] or match["clock"]):
        raise _error(raw, "cannot read it")
    zone = _zone(match["zone"] or default_zone, raw)
    clock = dt.time(0, 0)
    if match["clock"]:
        try:
            clock = dt.time.fromisoformat(match["clock"].zfill(5 if len(match["clock"]) < 6 else 8))
        except ValueError:
            raise _error(raw, f"{match['clock']!r} is not a time of day") from None
    if match["date"]:
        try:
            day = dt.date.fromisoformat(match["date"])
        except ValueError:
            raise _error(raw, f"{match['date']!r} is not a date") from None
        return _localise(dt.datetime.combine(day, clock), zone, raw)
    # A time of day alone: the next time the clock in that zone shows it.
    local_now = now.astimezone(zone)
    day = local_now.date()
    for _ in range(3):
        wall = dt.datetime.combine(day, clock)
        try:
            instant = _localise(wall, zone, raw)
        except InputError:
            day += dt.timedelta(days=1)
            continue
        if instant > now:
            return instant
        day += dt.timedelta(days=1)
    raise _error(raw, "no such time in the next days")  # pragma: no cover


def format_both(instant: dt.datetime, timezone: str) -> str:
    """``2026-12-06 02:00 Europe/Berlin (01:00 UTC)``: a time in a zone and in UTC."""
    local = instant.astimezone(ZoneInfo(timezone))
    utc = instant.astimezone(dt.UTC)
    utc_text = f"{utc:%H:%M}" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M}"
    return f"{local:%Y-%m-%d %H:%M} {timezone} ({utc_text} UTC)"
