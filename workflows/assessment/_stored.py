"""Stored assessments: the ``assessments`` rows (a host's latest assessment, replaced as a
whole) and the questions asked of them (which hosts are stale, which a CVE affects).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.assessment._risk import Finding, naive_utc
from workflows.models import Assessment
from workflows.ports import PatchIdentity
from workflows.reports import record_assessment


def to_row(finding: Finding, *, at: dt.datetime) -> Assessment:
    return Assessment(
        host=finding.host,
        package=finding.package,
        current=finding.current,
        candidate=finding.candidate,
        advisories=list(finding.advisories),
        cves=list(finding.cves),
        severity=finding.severity,
        cvss=finding.cvss,
        known_exploited=finding.known_exploited,
        security=finding.security,
        published=finding.published,
        risk=finding.risk,
        reasons=list(finding.reasons),
        identity=finding.identity.to_json() if finding.identity else None,
        assessed_at=at,
    )


def from_row(row: Assessment) -> Finding:
    return Finding(
        host=row.host,
        package=row.package,
        current=row.current,
        candidate=row.candidate,
        advisories=tuple(row.advisories),
        cves=tuple(row.cves),
        severity=row.severity,
        cvss=row.cvss,
        known_exploited=row.known_exploited,
        published=row.published,
        security=row.security,
        risk=row.risk,
        reasons=tuple(row.reasons),
        identity=PatchIdentity.from_json(row.identity) if row.identity else None,
    )


async def store(
    session: AsyncSession, *, host: str, findings: Sequence[Finding], at: dt.datetime
) -> None:
    """Record a host's assessment at ``at``; it replaces the host's earlier one."""
    await session.execute(sa.delete(Assessment).where(Assessment.host == host))
    if not findings:
        # an empty row keeps the time the host was assessed and found clean
        session.add(
            Assessment(host=host, package="", candidate="", risk=0, reasons=[], assessed_at=at)
        )
    session.add_all(to_row(f, at=at) for f in findings)
    await session.flush()
    await record_assessment(session, host=host, findings=findings, at=at)  # for reports


async def latest(
    session: AsyncSession, *, hosts: Iterable[str] | None = None
) -> dict[str, tuple[dt.datetime, list[Finding]]]:
    """The current assessment per host: its time and its findings (riskiest first)."""
    query = sa.select(Assessment).order_by(Assessment.host, Assessment.risk.desc())
    if hosts is not None:
        query = query.where(Assessment.host.in_(list(hosts)))
    result: dict[str, tuple[dt.datetime, list[Finding]]] = {}
    for row in await session.scalars(query):
        _, items = result.setdefault(row.host, (row.assessed_at, []))
        if row.package:
            items.append(from_row(row))
    return result


def stale_hosts(
    assessments: Mapping[str, tuple[dt.datetime, list[Finding]]],
    *,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> list[str]:
    """Hosts whose current assessment is older than ``max_age`` (sorted)."""
    return sorted(
        host for host, (at, _) in assessments.items() if naive_utc(now) - naive_utc(at) > max_age
    )


def affected_by(
    assessments: Mapping[str, tuple[dt.datetime, list[Finding]]], cve: str
) -> dict[str, list[Finding]]:
    """Hosts whose current assessment has a fix for ``cve``, with those fixes."""
    wanted = cve.upper()
    found: dict[str, list[Finding]] = {}
    for host, (_, findings) in sorted(assessments.items()):
        fixes = [f for f in findings if wanted in f.cves]
        if fixes:
            found[host] = fixes
    return found
