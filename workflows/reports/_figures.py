"""The figures of an evidence bundle, computed from plain data (pure; no database).

Definitions (also printed in summary.html and docs/reporting.md):

- A **fix** is one security update a host needed (a ``fix_detections`` row: host, package,
  fixed version). It became **available** at its advisory's publication when the
  advisory gives one, else when an assessment first found it on the host.
- It is **patched** when the first healthy host run that finished after its detection
  left the package at the fixed version or later. **Time to patch** = patched - available.
- **Within SLA**: patched at most ``PATCHGATE_SLA_DAYS[severity]`` days after available.
  The share within SLA is over the fixes patched in the period plus the fixes still open
  at its end that are already past their SLA (an overdue open fix is a miss).
- **Exposure-days**: for every fix, the days of the period during which it was available
  and not yet patched, added up per severity.
- **Rollback rate**: host runs rolled back (or whose rollback failed) over host runs that
  changed a host; and rollouts that ended ``rolled_back`` over rollouts that ended.
- **Time to decision**: approval gates decided in the period, from opening to decision.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITY_ORDER = ("critical", "high", "medium", "low", "unknown")
DAY = 86400.0

# (package manager or None, version a, version b) -> <0, 0, >0
VersionCompare = Callable[[str | None, str, str], int]


@dataclass(frozen=True)
class Period:
    """[since, until): both aware datetimes."""

    since: dt.datetime
    until: dt.datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("a report period needs aware datetimes")
        if self.until <= self.since:
            raise ValueError("the period must end after it starts")

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / DAY

    def contains(self, when: dt.datetime | None) -> bool:
        return when is not None and self.since <= when < self.until

    def buckets(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """Days for a period of up to 31 days, else weeks (the last one may be short)."""
        step = dt.timedelta(days=1 if self.days <= 31 else 7)
        out = []
        start = self.since
        while start < self.until:
            out.append((start, min(start + step, self.until)))
            start += step
        return out

    def bucket_of(self, when: dt.datetime) -> int:
        step = DAY if self.days <= 31 else 7 * DAY
        return int((when - self.since).total_seconds() // step)


def severity_key(severity: str | None) -> str:
    value = (severity or "unknown").lower()
    return value if value in SEVERITY_ORDER else "unknown"


@dataclass(frozen=True)
class Detection:
    host: str
    package: str
    candidate: str
    severity: str
    available: dt.datetime
    first_detected: dt.datetime


@dataclass(frozen=True)
class PatchRun:
    """A healthy host run: when it finished and what it left installed."""

    finished: dt.datetime
    after: Mapping[str, Any]


def fix_patched_at(
    detection: Detection,
    runs: Iterable[PatchRun],
    *,
    manager: str | None,
    compare: VersionCompare | None,
) -> dt.datetime | None:
    """When the fix was installed: the first run (in time order) after detection that left
    the package at the fixed version or later (equal only, without a version compare)."""
    for run in runs:
        if run.finished < detection.first_detected:
            continue
        after = run.after.get(detection.package)
        if not isinstance(after, str):
            continue
        if after == detection.candidate:
            return run.finished
        if compare is not None:
            try:
                if compare(manager, after, detection.candidate) >= 0:
                    return run.finished
            except ValueError:
                continue
    return None


@dataclass
class SeverityFigures:
    severity: str
    sla_days: int | None
    patched: list[float] = field(default_factory=list)  # time to patch, days
    within_sla: int = 0
    open_at_end: int = 0
    overdue_open: int = 0
    exposure_days: float = 0.0

    @property
    def mean_days(self) -> float | None:
        return statistics.fmean(self.patched) if self.patched else None

    @property
    def median_days(self) -> float | None:
        return statistics.median(self.patched) if self.patched else None

    @property
    def sla_population(self) -> int:
        return len(self.patched) + self.overdue_open

    @property
    def sla_share(self) -> float | None:
        if self.sla_days is None or not self.sla_population:
            return None
        return self.within_sla / self.sla_population

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "sla_days": self.sla_days,
            "fixes_patched": len(self.patched),
            "mean_days": _round(self.mean_days),
            "median_days": _round(self.median_days),
            "within_sla": self.within_sla,
            "sla_population": self.sla_population,
            "sla_share": _round(self.sla_share, 4),
            "open_at_end": self.open_at_end,
            "overdue_open": self.overdue_open,
            "exposure_days": _round(self.exposure_days),
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Figures:
    """Every figure of the summary, accumulated while the bundle's rows stream by."""

    period: Period
    sla_days: Mapping[str, int]
    severities: dict[str, SeverityFigures] = field(default_factory=dict)
    # chart data: per bucket and severity, the times to patch (days)
    ttp_by_bucket: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    hosts_known: int = 0
    hosts_assessed: int = 0
    hosts_patched: int = 0
    hosts_with_gaps: int = 0
    known_by_bucket: dict[int, int] = field(default_factory=dict)  # hosts created in bucket
    assessed_by_bucket: dict[int, int] = field(default_factory=dict)
    patched_by_bucket: dict[int, int] = field(default_factory=dict)
    known_before: int = 0  # hosts known before the period
    host_runs: int = 0
    host_runs_changed: int = 0
    host_runs_rolled_back: int = 0
    host_results: dict[str, int] = field(default_factory=dict)
    rollouts: int = 0
    rollouts_ended: int = 0
    rollouts_rolled_back: int = 0
    rollout_states: dict[str, int] = field(default_factory=dict)
    decision_hours: list[float] = field(default_factory=list)
    gates_decided: dict[str, int] = field(default_factory=dict)
    votes: int = 0
    exceptions: int = 0

    def __post_init__(self) -> None:
        for severity in SEVERITY_ORDER:
            self.severities[severity] = SeverityFigures(severity, self.sla_days.get(severity))

    # --- fixes ----------------------------------------------------------------------------

    def add_fix(self, detection: Detection, patched_at: dt.datetime | None) -> None:
        period = self.period
        if patched_at is not None and patched_at < period.since:
            return  # closed before the period
        if detection.available >= period.until:
            return
        figures = self.severities[detection.severity]
        sla = figures.sla_days
        end = patched_at if patched_at is not None and patched_at < period.until else None
        start = max(detection.available, period.since)
        stop = end if end is not None else period.until
        if stop > start:
            figures.exposure_days += (stop - start).total_seconds() / DAY
        if end is not None:
            days = max(0.0, (end - detection.available).total_seconds() / DAY)
            figures.patched.append(days)
            if sla is not None and days <= sla:
                figures.within_sla += 1
            key = (period.bucket_of(end), detection.severity)
            self.ttp_by_bucket.setdefault(key, []).append(days)
        else:
            figures.open_at_end += 1
            age = (period.until - detection.available).total_seconds() / DAY
            if sla is not None and age > sla:
                figures.overdue_open += 1

    # --- hosts ----------------------------------------------------------------------------

    def add_host(
        self,
        *,
        created: dt.datetime | None,
        assessed: Iterable[dt.datetime],
        patched: Iterable[dt.datetime],
        gap: bool,
    ) -> None:
        period = self.period
        if created is not None and created >= period.until:
            return
        self.hosts_known += 1
        if created is None or created < period.since:
            self.known_before += 1
        else:
            bucket = period.bucket_of(created)
            self.known_by_bucket[bucket] = self.known_by_bucket.get(bucket, 0) + 1
        assessed_buckets = {period.bucket_of(t) for t in assessed if period.contains(t)}
        patched_buckets = {period.bucket_of(t) for t in patched if period.contains(t)}
        for bucket in assessed_buckets:
            self.assessed_by_bucket[bucket] = self.assessed_by_bucket.get(bucket, 0) + 1
        for bucket in patched_buckets:
            self.patched_by_bucket[bucket] = self.patched_by_bucket.get(bucket, 0) + 1
        self.hosts_assessed += bool(assessed_buckets)
        self.hosts_patched += bool(patched_buckets)
        self.hosts_with_gaps += gap

    # --- runs, rollouts, gates ------------------------------------------------------------

    def add_host_run(self, *, state: str, changed: bool) -> None:
        self.host_runs += 1
        self.host_results[state] = self.host_results.get(state, 0) + 1
        if changed:
            self.host_runs_changed += 1
            if state in ("rolled_back", "rollback_failed"):
                self.host_runs_rolled_back += 1

    def add_rollout(self, *, state: str, ended: bool) -> None:
        self.rollouts += 1
        self.rollout_states[state] = self.rollout_states.get(state, 0) + 1
        if ended:
            self.rollouts_ended += 1
            self.rollouts_rolled_back += state == "rolled_back"

    def add_gate(
        self, *, kind: str, state: str, opened: dt.datetime, decided: dt.datetime | None
    ) -> None:
        if decided is None or not self.period.contains(decided):
            return
        self.gates_decided[state] = self.gates_decided.get(state, 0) + 1
        if kind == "approval" and state in ("approved", "rejected"):
            self.decision_hours.append(max(0.0, (decided - opened).total_seconds() / 3600))

    # --- the result -----------------------------------------------------------------------

    def coverage_series(self) -> list[dict[str, Any]]:
        known = self.known_before
        out = []
        for index, (start, end) in enumerate(self.period.buckets()):
            known += self.known_by_bucket.get(index, 0)
            out.append(
                {
                    "start": start,
                    "end": end,
                    "known": known,
                    "assessed": self.assessed_by_bucket.get(index, 0),
                    "patched": self.patched_by_bucket.get(index, 0),
                }
            )
        return out

    def ttp_series(self) -> dict[str, list[float | None]]:
        buckets = len(self.period.buckets())
        series: dict[str, list[float | None]] = {}
        for severity in SEVERITY_ORDER:
            values: list[float | None] = []
            for index in range(buckets):
                days = self.ttp_by_bucket.get((index, severity))
                values.append(statistics.median(days) if days else None)
            if any(v is not None for v in values):
                series[severity] = values
        return series

    def as_json(self) -> dict[str, Any]:
        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        hours = self.decision_hours
        return {
            "time_to_patch": [self.severities[s].as_json() for s in SEVERITY_ORDER],
            "coverage": {
                "hosts_known": self.hosts_known,
                "hosts_assessed": self.hosts_assessed,
                "hosts_patched": self.hosts_patched,
                "hosts_with_gaps": self.hosts_with_gaps,
                "assessed_share": share(self.hosts_assessed, self.hosts_known),
                "patched_share": share(self.hosts_patched, self.hosts_known),
            },
            "rollback": {
                "host_runs": self.host_runs,
                "host_runs_changed": self.host_runs_changed,
                "host_runs_rolled_back": self.host_runs_rolled_back,
                "host_rollback_rate": share(self.host_runs_rolled_back, self.host_runs_changed),
                "rollouts": self.rollouts,
                "rollouts_ended": self.rollouts_ended,
                "rollouts_rolled_back": self.rollouts_rolled_back,
                "rollout_rollback_rate": share(self.rollouts_rolled_back, self.rollouts_ended),
                "rollout_states": dict(sorted(self.rollout_states.items())),
                "host_results": dict(sorted(self.host_results.items())),
            },
            "exposure_days": {s: _round(self.severities[s].exposure_days) for s in SEVERITY_ORDER},
            "approvals": {
                "gates_decided": dict(sorted(self.gates_decided.items())),
                "votes": self.votes,
                "decisions_timed": len(hours),
                "mean_hours_to_decision": _round(statistics.fmean(hours) if hours else None),
                "median_hours_to_decision": _round(statistics.median(hours) if hours else None),
            },
            "exceptions": self.exceptions,
        }
