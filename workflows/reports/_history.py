"""What reports need from assessments over time: when each host was assessed and when
each security fix was first found on it.

``assessments`` keeps only a host's latest assessment; :func:`record_assessment` (called
by :func:`workflows.assessment.store` in the same transaction) appends a
``host_assessments`` row and keeps one ``fix_detections`` row per host, package and fixed
version from the first assessment that listed it (its ``last_detected_at`` moves on).
A fix found again after a healthy host run changed its package since it was last seen
(the run closed it; a restore from an old backup undid that) is *reopened*: the time goes
into ``reopened_at``, and reports count it open again from then.
Only security fixes are kept: time to patch and SLAs are about them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.db import in_parts
from workflows.models import FixDetection, HostAssessment, HostRun

# multi-row INSERTs through the tables, not ORM objects
HOST_ASSESSMENTS = cast(sa.Table, HostAssessment.__table__)
FIX_DETECTIONS = cast(sa.Table, FixDetection.__table__)


class FindingLike(Protocol):
    """The parts of :class:`workflows.assessment.Finding` kept here."""

    @property
    def package(self) -> str: ...
    @property
    def current(self) -> str | None: ...
    @property
    def candidate(self) -> str: ...
    @property
    def severity(self) -> str | None: ...
    @property
    def cvss(self) -> float | None: ...
    @property
    def published(self) -> dt.datetime | None: ...
    @property
    def security(self) -> bool: ...
    @property
    def advisories(self) -> tuple[str, ...]: ...
    @property
    def cves(self) -> tuple[str, ...]: ...


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # advisory dates without a zone are UTC
    return value


async def record_assessment(
    session: AsyncSession, *, host: str, findings: Sequence[FindingLike], at: dt.datetime
) -> None:
    """Append the host's assessment time and note every security fix it needs (no commit)."""
    await record_assessments(session, [(host, findings)], at=at)


async def record_assessments(
    session: AsyncSession,
    assessed: Sequence[tuple[str, Sequence[FindingLike]]],
    *,
    at: dt.datetime,
) -> None:
    """:func:`record_assessment` for many hosts at once (each host once): one multi-row
    INSERT of their assessment times, one read of the fixes already known on them (and,
    when there are some, of their healthy runs since), one multi-row INSERT of the new
    fixes (no commit)."""
    if not assessed:
        return
    security = {
        host: [f for f in findings if f.security and f.package] for host, findings in assessed
    }
    await session.execute(
        sa.insert(HOST_ASSESSMENTS),
        [
            {"host": host, "assessed_at": at, "fixes": len(fixes)}
            for host, fixes in security.items()
        ],
    )
    hosts = sorted(host for host, fixes in security.items() if fixes)
    known: dict[tuple[str, str, str], FixDetection] = {}
    for part in in_parts(hosts):
        packages = sorted({f.package for host in part for f in security[host]})
        for fix in await session.scalars(
            sa.select(FixDetection).where(
                FixDetection.host.in_(part), FixDetection.package.in_(packages)
            )
        ):
            known[(fix.host, fix.package, fix.candidate)] = fix
    runs: dict[str, list[tuple[dt.datetime, dict[str, object]]]] = {}
    if known:  # a run matters only to a fix already known (see _undone)
        since = min(row.last_detected_at for row in known.values())
        seen = sorted({host for host, _, _ in known})
        for part in in_parts(seen):
            for name, finished, after in await session.execute(
                sa.select(HostRun.host_name, HostRun.finished_at, HostRun.after_versions).where(
                    HostRun.host_name.in_(part),
                    HostRun.state == "healthy",
                    HostRun.finished_at >= since,
                    HostRun.finished_at <= at,
                )
            ):
                runs.setdefault(name, []).append((finished, after or {}))
    new: dict[tuple[str, str, str], dict[str, object]] = {}
    for host in hosts:
        for finding in security[host]:
            key = (host, finding.package, finding.candidate)
            if (twice := new.get(key)) is not None:  # listed twice in one assessment
                _merge(twice, finding)
                continue
            row = known.get(key)
            if row is None:
                new[key] = {
                    "host": host,
                    "package": finding.package,
                    "current": finding.current,
                    "candidate": finding.candidate,
                    "severity": finding.severity,
                    "cvss": finding.cvss,
                    "published": _aware(finding.published),
                    "advisories": list(finding.advisories),
                    "cves": list(finding.cves),
                    "first_detected_at": at,
                    "last_detected_at": at,
                    "reopened_at": None,
                }
                continue
            if _undone(row, finding, runs.get(host, ()), at=at):
                row.reopened_at = [*(row.reopened_at or []), at.isoformat()]
            row.last_detected_at = max(row.last_detected_at, at)
            row.severity = finding.severity or row.severity
            row.cvss = finding.cvss if finding.cvss is not None else row.cvss
            row.published = row.published or _aware(finding.published)
            row.advisories = sorted(set(row.advisories) | set(finding.advisories))
            row.cves = sorted(set(row.cves) | set(finding.cves))
    if new:
        await session.execute(sa.insert(FIX_DETECTIONS), list(new.values()))
    await session.flush()


def _merge(row: dict[str, object], finding: FindingLike) -> None:
    """A fix listed again in the same assessment: as an update of the row just made."""
    row["severity"] = finding.severity or row["severity"]
    row["cvss"] = finding.cvss if finding.cvss is not None else row["cvss"]
    row["published"] = row["published"] or _aware(finding.published)
    row["advisories"] = sorted(set(row["advisories"]) | set(finding.advisories))  # type: ignore[call-overload]
    row["cves"] = sorted(set(row["cves"]) | set(finding.cves))  # type: ignore[call-overload]


def _undone(
    row: FixDetection,
    finding: FindingLike,
    runs: Sequence[tuple[dt.datetime, dict[str, object]]],
    *,
    at: dt.datetime,
) -> bool:
    """A healthy run since the fix was last seen left the package at another version than
    the one found now: the run closed the fix and something undid it. A run that finished
    at the very time the fix was last seen counts as after it: the engine assesses a host
    (the refresh before pinning) before it patches it, never the other way round."""
    for finished, after in runs:
        if not row.last_detected_at <= finished <= at:
            continue
        left = after.get(finding.package)
        if isinstance(left, str) and left != finding.current:
            return True
    return False
