"""What a baseline (a plan's PackageSelection) takes of the fixes found, what it leaves out
and why, over one host's findings or the fresh assessments of a rollout's hosts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from workflows.assessment._risk import Finding, age_days, naive_utc
from workflows.plans import PackageSelection, severity_rank


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
            age = age_days(now, finding.published)
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
        if naive_utc(now) - naive_utc(at) > max_age:
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
        assessed_at=min(times, key=naive_utc) if times else None,
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
