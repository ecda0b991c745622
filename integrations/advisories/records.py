"""Advisory records for the assessment from what the hosts report: their own advisories
(dnf/zypper) and the package drivers' security marks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from integrations.packages.base import SecurityInfo
from workflows.assessment import AdvisoryRecord
from workflows.ports import HostAdvisory


def records_from_host(advisories: Iterable[HostAdvisory], *, host: str) -> list[AdvisoryRecord]:
    """Advisory records for the assessment (the host's own data, any platform)."""
    return [
        AdvisoryRecord(
            id=a.id,
            packages=dict(a.packages),
            cves=tuple(a.cves),
            severity=a.severity,
            cvss=a.cvss,
            published=a.published,
            source=f"host {host}",
        )
        for a in advisories
    ]


def records_from_security(infos: Mapping[str, SecurityInfo], *, host: str) -> list[AdvisoryRecord]:
    """One record per advisory id (or per package when the data names none), from the
    package drivers' ``SecurityInfo`` (``list_upgradable``'s security marks)."""
    packages: dict[str, dict[str, str | None]] = {}
    cves: dict[str, set[str]] = {}
    severity: dict[str, str | None] = {}
    for info in infos.values():
        for advisory in info.advisories or (f"{info.package}-security",):
            packages.setdefault(advisory, {})[info.package] = None
            cves.setdefault(advisory, set()).update(info.cves)
            severity.setdefault(advisory, info.severity)
    return [
        AdvisoryRecord(
            id=advisory,
            packages=packages[advisory],
            cves=tuple(sorted(cves[advisory])),
            severity=severity[advisory],
            source=f"host {host}",
        )
        for advisory in sorted(packages)
    ]
