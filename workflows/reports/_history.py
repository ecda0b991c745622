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
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import FixDetection, HostAssessment, HostRun


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
    security = [f for f in findings if f.security and f.package]
    session.add(HostAssessment(host=host, assessed_at=at, fixes=len(security)))
    if not security:
        await session.flush()
        return
    known = {
        (row.package, row.candidate): row
        for row in await session.scalars(
            sa.select(FixDetection).where(
                FixDetection.host == host,
                FixDetection.package.in_(sorted({f.package for f in security})),
            )
        )
    }
    since = min((row.last_detected_at for row in known.values()), default=at)
    runs = [
        (finished, after or {})
        for finished, after in await session.execute(
            sa.select(HostRun.finished_at, HostRun.after_versions).where(
                HostRun.host_name == host,
                HostRun.state == "healthy",
                HostRun.finished_at >= since,
                HostRun.finished_at <= at,
            )
        )
    ]
    for finding in security:
        row = known.get((finding.package, finding.candidate))
        if row is None:
            row = FixDetection(
                host=host,
                package=finding.package,
                current=finding.current,
                candidate=finding.candidate,
                severity=finding.severity,
                cvss=finding.cvss,
                published=_aware(finding.published),
                advisories=list(finding.advisories),
                cves=list(finding.cves),
                first_detected_at=at,
                last_detected_at=at,
            )
            session.add(row)
            known[(finding.package, finding.candidate)] = row
        else:
            if _undone(row, finding, runs, at=at):
                row.reopened_at = [*(row.reopened_at or []), at.isoformat()]
            row.last_detected_at = max(row.last_detected_at, at)
            row.severity = finding.severity or row.severity
            row.cvss = finding.cvss if finding.cvss is not None else row.cvss
            row.published = row.published or _aware(finding.published)
            row.advisories = sorted(set(row.advisories) | set(finding.advisories))
            row.cves = sorted(set(row.cves) | set(finding.cves))
    await session.flush()


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
