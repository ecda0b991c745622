"""Which fixes a host needs (advisory records matched to its upgradable packages) and the
risk score of each, with its reasons (the table in the room's docstring).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from workflows.plans import severity_rank
from workflows.ports import InventoryHost, PatchIdentity, UpgradablePackage

SEVERITY_CVSS = {"critical": 9.5, "high": 7.5, "medium": 5.0, "low": 2.5}
# The vendors' severity words as PatchGate's: Microsoft's (MSRC and the Windows fleet
# tools: Critical, Important, Moderate, Low), Red Hat's, Debian's and Ubuntu's. Words
# that say "no rating" (unspecified, none, optional, unknown) are no severity.
SEVERITY_WORDS = {
    "critical": "critical",
    "urgent": "critical",
    "high": "high",
    "important": "high",
    "medium": "medium",
    "moderate": "medium",
    "low": "low",
    "negligible": "low",
    "unimportant": "low",
}
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
    identity: PatchIdentity | None = None  # a vendor update's KB/catalog id, title

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        if self.identity is not None:
            out["identity"] = self.identity.to_json()
        return out


def canonical_severity(word: str | None) -> str | None:
    """A vendor's severity word as PatchGate's (Important -> high, Moderate -> medium);
    None for a word that rates nothing or is not known."""
    if word is None:
        return None
    return SEVERITY_WORDS.get(word.strip().lower())


def usable_cvss(score: float | None) -> float | None:
    """A CVSS base score as given by a tool, or None when it is not one (out of 0-10)."""
    if score is None or isinstance(score, bool):
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    return value if 0.0 <= value <= 10.0 else None


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
        scores = [c for r in matched if (c := usable_cvss(r.cvss)) is not None]
        cvss = max(scores) if scores else None
        severities = [w for r in matched if (w := canonical_severity(r.severity))]
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
            identity=package.identity,
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
    elif (word := canonical_severity(finding.severity)) in SEVERITY_CVSS:
        base = SEVERITY_CVSS[word or ""]
        reasons.append(f"severity {word}")
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
        days = age_days(now, finding.published)
        points += min(days, 30) / 3
        reasons.append(f"published {days} days ago")
    return replace(finding, risk=min(100, round(points)), reasons=tuple(reasons))


def naive_utc(when: dt.datetime) -> dt.datetime:
    """UTC without a zone, so stored times from any backend compare (naive ones are UTC)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def age_days(now: dt.datetime, published: dt.datetime) -> int:
    """Whole days since publication (times without a zone are UTC)."""
    return max(0, (naive_utc(now) - naive_utc(published)).days)
