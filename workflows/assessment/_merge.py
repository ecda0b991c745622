"""From the fresh assessments of one platform's hosts to each host's share of the pinned
set: the version the platform agrees on per package, what each host simulates, and what
a host would still lack afterwards (its left-over updates).

The rule (see docs/design-notes.md, "Issue 16"): every fix the baseline selects on any
host of the platform is in the platform's set (the union); where hosts report different
candidate versions of a package, the set pins the version most of them report (ties:
the one seen first in ring order), and a host whose candidate differs does not get that
package: it is listed as a left-over update of that host (not fully patched).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from workflows.assessment._baseline import HostsBaseline
from workflows.assessment._risk import Finding


@dataclass(frozen=True)
class PlatformShares:
    agreed: dict[str, str] = field(default_factory=dict)  # package -> version
    specs: dict[str, list[str]] = field(default_factory=dict)  # host -> ["pkg=version"]
    left_over: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> pkg -> why


def merge_selected(hosts: Sequence[str], baseline: HostsBaseline) -> PlatformShares:
    """Each host's selected fixes, merged into one version per package (see module doc)."""
    mine: dict[str, dict[str, str]] = {h: {} for h in hosts}
    for finding in baseline.result.selected:
        if finding.host in mine:
            mine[finding.host][finding.package] = finding.candidate
    votes: dict[str, Counter[str]] = {}
    first: dict[tuple[str, str], int] = {}
    for order, host in enumerate(hosts):
        for package, version in mine[host].items():
            votes.setdefault(package, Counter())[version] += 1
            first.setdefault((package, version), order)
    agreed = {
        package: min(counts, key=lambda v, p=package, c=counts: (-c[v], first[(p, v)]))  # type: ignore[misc]
        for package, counts in votes.items()
    }
    shares = PlatformShares(agreed=dict(sorted(agreed.items())))
    for host in hosts:
        shares.specs[host] = [f"{p}={v}" for p, v in sorted(mine[host].items()) if agreed[p] == v]
        differ = {
            p: f"{v} is upgradable here; the set pins {agreed[p]} (most hosts)"
            for p, v in sorted(mine[host].items())
            if agreed[p] != v
        }
        if differ:
            shares.left_over[host] = differ
    return shares


def carry_advisories(new: Sequence[Finding], old: Sequence[Finding]) -> list[Finding]:
    """A refresh without advisory data keeps what the previous assessment knew about the
    same package at the same candidate version (advisories, CVEs, severity, dates, and
    the risk score and reasons computed from them)."""
    known: Mapping[tuple[str, str], Finding] = {(f.package, f.candidate): f for f in old}
    result = []
    for finding in new:
        before = known.get((finding.package, finding.candidate))
        if finding.advisories or before is None or not before.advisories:
            result.append(finding)
            continue
        result.append(
            replace(
                finding,
                advisories=before.advisories,
                cves=before.cves,
                severity=before.severity,
                cvss=before.cvss,
                known_exploited=before.known_exploited,
                published=before.published,
                security=finding.security or before.security,
                risk=max(finding.risk, before.risk),
                reasons=before.reasons,
            )
        )
    return result
