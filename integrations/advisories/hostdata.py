"""Advisories from the hosts themselves: dnf updateinfo and zypper patches, as parsed
by the package drivers (``SecurityInfo``), turned into advisory records."""

from __future__ import annotations

from collections.abc import Mapping

from integrations.packages.base import SecurityInfo
from workflows.assessment import AdvisoryRecord


def records_from_security(infos: Mapping[str, SecurityInfo], *, host: str) -> list[AdvisoryRecord]:
    """One record per advisory id (or per package when the data names none)."""
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
