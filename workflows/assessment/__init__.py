"""Assessment: which fixes each host needs, how urgent each is, and what a baseline takes.

Inputs are pure data: a host (inventory attributes, platform facts), its upgradable
packages, and advisory records (OSV files for Debian/Ubuntu, the hosts' own dnf/zypper
advisory data) plus a known-exploited list. The output per host and fix is a
:class:`Finding` with a **risk score** (0-100) and its reasons:

==========================  ==========================================================
severity / CVSS             CVSS base score x 5 (0-50); without CVSS the severity
                            stands in (critical 9.5, high 7.5, medium 5, low 2.5,
                            unknown 1) -- a security update with no advisory scores 1
known exploited (KEV)       +25
internet-facing host        +10
host criticality            critical +15, high +10, medium +5, low 0, unset +5
days since publication      +1 per 3 days, at most +10 (30 days)
==========================  ==========================================================

capped at 100. A host's risk is that of its riskiest fix. A baseline
(:class:`~workflows.plans.PackageSelection`) then selects fixes or leaves them out,
each with its reason (:func:`apply_baseline`). Stored rows live in the
``assessments`` table; the latest row per host and package is the current assessment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Assessment
from workflows.plans import PackageSelection, severity_rank
from workflows.ports import InventoryHost, UpgradablePackage
from workflows.reports import record_assessment

SEVERITY_CVSS = {"critical": 9.5, "high": 7.5, "medium": 5.0, "low": 2.5}
CRITICALITY_POINTS = {"critical": 15, "high": 10, "medium": 5, "low": 0}
Compare = Callable[[str, str], int]


@dataclass(frozen=True)
class AdvisoryRecord:
    """One advisory: the packages it fixes (package -> fixed version, None: any update)."""

    id: str
    packages: Mapping[str, str | None]
    cves: tuple[str, ...] = ()
    severity: str | None = None
    cvss: float | None = None
    published: dt.datetime | None = None
    ecosystem: str | None = None  # "Debian:12", "Ubuntu:22.04"; None: any platform
    source: str = ""  # the file (or host) it came from


@dataclass(frozen=True)
class Finding:
    host: str
    package: str
    current: str | None
    candidate: str
    advisories: tuple[str, ...]
    cves: tuple[str, ...]
    severity: str | None
    cvss: float | None
    known_exploited: bool
    published: dt.datetime | None
    security: bool
    risk: int = 0
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "package": self.package,
            "current": self.current,
            "candidate": self.candidate,
            "advisories": list(self.advisories),
            "cves": list(self.cves),
            "severity": self.severity,
            "cvss": self.cvss,
            "known_exploited": self.known_exploited,
            "published": self.published.isoformat() if self.published else None,
            "risk": self.risk,
            "reasons": list(self.reasons),
        }


def severity_from_cvss(score: float | None) -> str | None:
    if score is None:
        return None
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else None


def _ecosystem_matches(ecosystem: str | None, os_id: str | None, os_version: str | None) -> bool:
    if ecosystem is None or os_id is None:
        return True
    name, _, release = ecosystem.partition(":")
    if name.lower() != os_id.lower():
        return False
    release = release.split(":")[0]
    return not release or os_version is None or release == os_version


def _applies(record: AdvisoryRecord, package: UpgradablePackage, compare: Compare) -> bool:
    fixed = None
    for name in (package.name, package.source):
        if name is not None and name in record.packages:
            fixed = record.packages[name]
            break
    else:
        return False
    if fixed is None:
        return True
    if package.current is not None and compare(package.current, fixed) >= 0:
        return False  # already fixed
    return compare(package.candidate, fixed) >= 0  # the update brings the fix


def find_fixes(
    host: InventoryHost,
    upgradable: Sequence[UpgradablePackage],
    records: Sequence[AdvisoryRecord],
    *,
    os_id: str | None,
    os_version: str | None,
    compare: Compare,
    known_exploited: Mapping[str, dt.date | None],
    now: dt.datetime,
) -> list[Finding]:
    """Every upgradable package of a host with the advisories its update fixes, scored."""
    usable = [r for r in records if _ecosystem_matches(r.ecosystem, os_id, os_version)]
    by_package: dict[str, list[AdvisoryRecord]] = {}
    for record in usable:
        for name in record.packages:
            by_package.setdefault(name, []).append(record)
    findings = []
    for package in upgradable:
        candidates = by_package.get(package.name, []) + (
            by_package.get(package.source, []) if package.source else []
        )
        matched = sorted(
            {r.id: r for r in candidates if _applies(r, package, compare)}.values(),
            key=lambda r: r.id,
        )
        cves = tuple(sorted({c for r in matched for c in r.cves}))
        scores = [r.cvss for r in matched if r.cvss is not None]
        cvss = max(scores) if scores else None
        severities = [r.severity for r in matched if r.severity]
        severity = max(severities, key=severity_rank) if severities else severity_from_cvss(cvss)
        dates = [r.published for r in matched if r.published is not None]
        finding = Finding(
            host=host.name,
            package=package.name,
            current=package.current,
            candidate=package.candidate,
            advisories=tuple(r.id for r in matched),
            cves=cves,
            severity=severity,
            cvss=cvss,
            known_exploited=any(c in known_exploited for c in cves),
            published=min(dates) if dates else None,
            security=package.security or bool(matched),
        )
        findings.append(score(finding, host, now=now, known_exploited=known_exploited))
    return sorted(findings, key=lambda f: (-f.risk, f.package))


def score(
    finding: Finding,
    host: InventoryHost,
    *,
    now: dt.datetime,
    known_exploited: Mapping[str, dt.date | None] | None = None,
) -> Finding:
    """The finding with its risk score and reasons (the table in the module docstring)."""
    reasons: list[str] = []
    if finding.cvss is not None:
        base = finding.cvss
        reasons.append(f"CVSS {finding.cvss:.1f}")
    elif finding.severity in SEVERITY_CVSS:
        base = SEVERITY_CVSS[finding.severity or ""]
        reasons.append(f"severity {finding.severity}")
    else:
        base = 1.0 if finding.security else 0.0
        reasons.append("security update, severity unknown" if finding.security else "not security")
    points = base * 5
    if finding.known_exploited:
        points += 25
        kev = sorted(c for c in finding.cves if c in (known_exploited or {}))
        reasons.append(f"known exploited ({', '.join(kev) or 'KEV'})")
    if host.internet_facing:
        points += 10
        reasons.append("internet-facing")
    points += CRITICALITY_POINTS.get(host.criticality or "", 5)
    reasons.append(f"criticality {host.criticality or 'unset'}")
    if finding.published is not None:
        days = _age_days(now, finding.published)
        points += min(days, 30) / 3
        reasons.append(f"published {days} days ago")
    return _replace(finding, risk=min(100, round(points)), reasons=tuple(reasons))


def _naive_utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _age_days(now: dt.datetime, published: dt.datetime) -> int:
    """Whole days since publication (times without a zone are UTC)."""
    return max(0, (_naive_utc(now) - _naive_utc(published)).days)


def _replace(finding: Finding, **changes: Any) -> Finding:
    from dataclasses import replace

    return replace(finding, **changes)


@dataclass(frozen=True)
class BaselineResult:
    selected: list[Finding] = field(default_factory=list)
    left_out: list[tuple[Finding, str]] = field(default_factory=list)


def why_left_out(finding: Finding, selection: PackageSelection, *, now: dt.datetime) -> str | None:
    """Why the baseline leaves this fix out, or None when it takes it."""
    name = finding.package
    if selection.security_only and not finding.security:
        return "not a security update (security_only)"
    if selection.min_severity is not None and severity_rank(finding.severity) < severity_rank(
        selection.min_severity
    ):
        return f"severity {finding.severity or 'unknown'} is below {selection.min_severity}"
    if selection.approve_after_days is not None:
        if finding.published is None:
            if finding.security:
                return f"no publication date to wait {selection.approve_after_days} days from"
        else:
            age = _age_days(now, finding.published)
            if age < selection.approve_after_days:
                wait = selection.approve_after_days
                return f"published {age} days ago; the baseline waits {wait}"
    if held := next((p for p in selection.holds if fnmatchcase(name, p)), None):
        return f"held ({held})"
    if excluded := next((p for p in selection.exclude if fnmatchcase(name, p)), None):
        return f"excluded ({excluded})"
    if not any(fnmatchcase(name, p) for p in selection.include):
        return "not in include"
    return None


def apply_baseline(
    findings: Iterable[Finding], selection: PackageSelection, *, now: dt.datetime
) -> BaselineResult:
    result = BaselineResult()
    for finding in findings:
        reason = why_left_out(finding, selection, now=now)
        if reason is None:
            result.selected.append(finding)
        else:
            result.left_out.append((finding, reason))
    return result


# --- storage -----------------------------------------------------------------------------


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
        host for host, (at, _) in assessments.items() if _naive_utc(now) - _naive_utc(at) > max_age
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


# --- the baseline over a rollout's hosts ------------------------------------------------


def needs_advisory_data(selection: PackageSelection) -> bool:
    """Whether the baseline can only be applied with advisory data (severity, dates).

    Without a stored assessment the engine knows each package's name and the package
    manager's security flag, nothing more: ``min_severity`` and ``approve_after_days``
    cannot be decided from that.
    """
    return selection.min_severity is not None or selection.approve_after_days is not None


@dataclass(frozen=True)
class HostsBaseline:
    """The baseline applied to the fresh assessments of a set of hosts (one platform, or
    all the hosts a dry run lays out)."""

    fresh: tuple[str, ...]  # hosts with a fresh assessment, in the order given
    stale: tuple[tuple[str, dt.datetime], ...]  # (host, assessed at) older than max_age
    missing: tuple[str, ...]  # never assessed
    result: BaselineResult
    assessed_at: dt.datetime | None = None  # the oldest fresh assessment

    @property
    def selected_packages(self) -> list[str]:
        return sorted({f.package for f in self.result.selected})

    def specs_for(self, host: str) -> tuple[list[str], list[str]]:
        """``name=candidate`` of the selected fixes upgradable on ``host``, and the
        selected packages it does not have (selected on other hosts only)."""
        mine = {f.package: f.candidate for f in self.result.selected if f.host == host}
        others = sorted({f.package for f in self.result.selected} - set(mine))
        return [f"{n}={v}" for n, v in sorted(mine.items())], others

    def to_json(self) -> dict[str, Any]:
        return {
            "fresh": list(self.fresh),
            "stale": [{"host": h, "assessed_at": at.isoformat()} for h, at in self.stale],
            "not_assessed": list(self.missing),
            "selected": [f.to_json() for f in self.result.selected],
            "left_out": [{**f.to_json(), "why": why} for f, why in self.result.left_out],
        }


def baseline_for(
    hosts: Sequence[str],
    stored: Mapping[str, tuple[dt.datetime, list[Finding]]],
    selection: PackageSelection,
    *,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> HostsBaseline:
    """Apply the baseline to the stored assessments of ``hosts`` that are fresh.

    An assessment older than ``max_age`` is stale and is not used (its host is listed).
    """
    fresh: list[str] = []
    stale: list[tuple[str, dt.datetime]] = []
    missing: list[str] = []
    findings: list[Finding] = []
    for host in hosts:
        if host not in stored:
            missing.append(host)
            continue
        at, items = stored[host]
        if _naive_utc(now) - _naive_utc(at) > max_age:
            stale.append((host, at))
            continue
        fresh.append(host)
        findings.extend(items)
    times = [stored[h][0] for h in fresh]
    return HostsBaseline(
        fresh=tuple(fresh),
        stale=tuple(stale),
        missing=tuple(missing),
        result=apply_baseline(findings, selection, now=now),
        assessed_at=min(times, key=_naive_utc) if times else None,
    )


def refusal_without_assessment(
    platform: str, hosts: Sequence[str], selection: PackageSelection
) -> str | None:
    """Why a platform with no fresh assessment cannot be pinned, or None (the live path:
    the package manager's own upgradable list, by name and security flag)."""
    if not needs_advisory_data(selection):
        return None
    needs = [
        name
        for name, value in (
            ("min_severity", selection.min_severity),
            ("approve_after_days", selection.approve_after_days),
        )
        if value is not None
    ]
    shown = ", ".join(hosts[:5]) + (f" (+{len(hosts) - 5})" if len(hosts) > 5 else "")
    return (
        f"{platform or 'unknown platform'}: no fresh assessment for {shown}; the baseline's "
        f"{' and '.join(needs)} need advisory data. Run `patchgate assess --refresh` and "
        "start the plan again"
    )


def render_baseline(baseline: HostsBaseline, *, limit: int = 50) -> list[str]:
    """Text lines: what the baseline selected and what it left out, and why.

    Shared by ``patchgate assess --plan`` and ``patchgate rollout start --dry-run``.
    """
    result = baseline.result
    lines = [f"Baseline selects {len(result.selected)} fix(es):"]
    lines += [f"  + {f.host} {f.package} -> {f.candidate}" for f in result.selected[:limit]]
    if len(result.selected) > limit:
        lines.append(f"  … (+{len(result.selected) - limit})")
    lines.append(f"Baseline leaves out {len(result.left_out)}:")
    lines += [
        f"  - {f.host} {f.package} -> {f.candidate}: {why}" for f, why in result.left_out[:limit]
    ]
    if len(result.left_out) > limit:
        lines.append(f"  … (+{len(result.left_out) - limit})")
    for host, at in baseline.stale:
        lines.append(f"  ! {host}: assessment from {at:%Y-%m-%d %H:%M} is stale, not used")
    for host in baseline.missing:
        lines.append(f"  ! {host}: not assessed")
    return lines
