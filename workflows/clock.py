"""Clocks: the real one, and a controllable one for tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 4, 2, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> None:
        self._now += delta

    def set(self, when: dt.datetime) -> None:
        self._now = when


class FileClock:
    """Test-only: reads "now" from a file holding an ISO timestamp, so tests can drive
    the clock of a real ``patchgate serve`` process. Falls back to real time if the
    file is empty or missing."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def now(self) -> dt.datetime:
        try:
            text = self._path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            return dt.datetime.now(dt.UTC)
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
