"""What reports need from assessments over time: when each host was assessed and when
each security fix was first found on it.

``assessments`` keeps only a host's latest assessment; :func:`record_assessment` (called
by :func:`workflows.assessment.store` in the same transaction) appends a
``host_assessments`` row and keeps one ``fix_detections`` row per host, package and fixed
version from the first assessment that listed it (its ``last_detected_at`` moves on).
Only security fixes are kept: time to patch and SLAs are about them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import FixDetection, HostAssessment


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
            row.last_detected_at = max(row.last_detected_at, at)
            row.severity = finding.severity or row.severity
            row.cvss = finding.cvss if finding.cvss is not None else row.cvss
            row.published = row.published or _aware(finding.published)
            row.advisories = sorted(set(row.advisories) | set(finding.advisories))
            row.cves = sorted(set(row.cves) | set(finding.cves))
    await session.flush()
