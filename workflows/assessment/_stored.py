"""Stored assessments: the ``assessments`` rows (a host's latest assessment, replaced as a
whole) and the questions asked of them (which hosts are stale, which a CVE affects).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.assessment._risk import Finding, naive_utc
from workflows.db import in_parts, in_parts_of
from workflows.models import Assessment
from workflows.ports import PatchIdentity
from workflows.reports import record_assessments

ASSESSMENTS = cast(sa.Table, Assessment.__table__)  # multi-row INSERTs, no ORM objects


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
    await store_many(session, [(host, findings)], at=at)


async def store_many(
    session: AsyncSession, assessed: Sequence[tuple[str, Sequence[Finding]]], *, at: dt.datetime
) -> None:
    """:func:`store` for many hosts in a few statements: one DELETE of their earlier
    assessments per :data:`workflows.db.IN_CHUNK` hosts, one multi-row INSERT of the new
    ones, and the history rows of :func:`workflows.reports.record_assessments`."""
    assessed = list(dict(assessed).items())  # a host named twice: its last assessment
    if not assessed:
        return
    names = [host for host, _ in assessed]
    for part in in_parts(names):
        await session.execute(sa.delete(Assessment).where(Assessment.host.in_(part)))
    rows: list[dict[str, Any]] = []
    for host, findings in assessed:
        if not findings:
            # an empty row keeps the time the host was assessed and found clean
            rows.append(_clean(host, at))
        rows.extend(_values(f, at=at) for f in findings)
    await session.execute(sa.insert(ASSESSMENTS), rows)
    await record_assessments(session, assessed, at=at)  # for reports


def _clean(host: str, at: dt.datetime) -> dict[str, Any]:
    return {
        **{c: None for c in _COLUMNS},
        "host": host,
        "package": "",
        "candidate": "",
        "advisories": [],
        "cves": [],
        "known_exploited": False,
        "security": False,
        "risk": 0,
        "reasons": [],
        "assessed_at": at,
    }


_COLUMNS = (
    "host", "package", "current", "candidate", "advisories", "cves", "severity", "cvss",
    "known_exploited", "security", "published", "risk", "reasons", "identity", "assessed_at",
)  # fmt: skip


def _values(finding: Finding, *, at: dt.datetime) -> dict[str, Any]:
    """The columns of :func:`to_row`, as one row of a multi-row INSERT."""
    return {
        "host": finding.host,
        "package": finding.package,
        "current": finding.current,
        "candidate": finding.candidate,
        "advisories": list(finding.advisories),
        "cves": list(finding.cves),
        "severity": finding.severity,
        "cvss": finding.cvss,
        "known_exploited": finding.known_exploited,
        "security": finding.security,
        "published": finding.published,
        "risk": finding.risk,
        "reasons": list(finding.reasons),
        "identity": finding.identity.to_json() if finding.identity else None,
        "assessed_at": at,
    }


async def latest(
    session: AsyncSession, *, hosts: Iterable[str] | None = None
) -> dict[str, tuple[dt.datetime, list[Finding]]]:
    """The current assessment per host: its time and its findings (riskiest first)."""
    query = sa.select(Assessment).order_by(Assessment.host, Assessment.risk.desc())
    queries = (
        [query]
        if hosts is None
        else [query.where(Assessment.host.in_(part)) for part in in_parts(sorted(set(hosts)))]
    )
    result: dict[str, tuple[dt.datetime, list[Finding]]] = {}
    for each in queries:
        async for part in in_parts_of(session, each, part=LATEST_PART):  # a fleet's rows
            for row in part:
                _, items = result.setdefault(row.host, (row.assessed_at, []))
                if row.package:
                    items.append(from_row(row))
    return result


LATEST_PART = 250  # rows turned into findings between two turns of the event loop


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
