"""Assessing one host now, for the engine's refresh right before a patch set is pinned.

:class:`HostAssessor` is what the engine needs; :class:`LiveAssessor` is the one built
from the executor alone (the host's upgradable list, no advisory feed): findings keep
the advisory data of the host's previous assessment for the same candidate version
(:func:`~workflows.assessment.carry_advisories`, applied by the engine).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from workflows.assessment._risk import AdvisoryRecord, Finding, find_fixes
from workflows.ports import Executor, HostAdvisory, InventoryHost, UpgradablePackage


class HostAssessor(Protocol):
    async def assess(
        self,
        host: InventoryHost,
        *,
        os_id: str | None,
        os_version: str | None,
        package_manager: str | None,
        now: dt.datetime,
    ) -> Sequence[Finding]: ...


def _no_comparison(_a: str, _b: str) -> int:  # never called: there are no advisories
    raise AssertionError("no advisory records to compare versions against")


class LiveAssessor:
    """The host's upgradable packages as findings, without advisory data."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def assess(
        self,
        host: InventoryHost,
        *,
        os_id: str | None,
        os_version: str | None,
        package_manager: str | None,
        now: dt.datetime,
    ) -> Sequence[Finding]:
        upgradable = await self.executor.list_upgradable(host)
        return find_fixes(
            host,
            upgradable,
            [],
            os_id=os_id,
            os_version=os_version,
            compare=_no_comparison,
            known_exploited={},
            now=now,
        )


def reported_findings(
    host: InventoryHost,
    upgradable: Sequence[UpgradablePackage],
    advisories: Sequence[HostAdvisory],
    *,
    os_id: str | None,
    os_version: str | None,
    now: dt.datetime,
    source: str,
    known_exploited: Mapping[str, dt.date | None] | None = None,
) -> list[Finding]:
    """Findings from what a backend's tool reports pending on a host: its upgradable
    packages with the advisories the tool says are pending there (the tool decided they
    apply, so each is matched to the packages it names whatever the versions), their
    CVEs checked against ``known_exploited`` (the KEV list) as a feed's are."""
    records = [
        AdvisoryRecord(
            id=a.id,
            packages=dict.fromkeys(a.packages),
            cves=tuple(a.cves),
            severity=a.severity,  # a vendor word is mapped by find_fixes (Important: high)
            cvss=a.cvss,  # out of 0-10: ignored by find_fixes
            published=a.published,
            source=source,
        )
        for a in advisories
    ]
    return find_fixes(
        host,
        upgradable,
        records,
        os_id=os_id,
        os_version=os_version,
        compare=_no_comparison,
        known_exploited=known_exploited or {},
        now=now,
    )
