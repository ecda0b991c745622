"""Ticket text: causes and severities, Jira labels, what a ticket says, and redaction.

Everything a ticket says passes :func:`redact` where it may carry command output or
text people typed, so a secret printed by a failing package script never reaches Jira.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Assessment, HostRun, Ring, Rollout

OUTPUT_LINES = 20

_SECRET = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|authorization)(\s*[:=]\s*|\s+)(\S+)"
)
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Terminal progress that says nothing once the command is over: ANSI cursor codes, and
# lines such as "(Reading database ... 45%", "Progress: [ 40%] [####....]",
# "Reading package lists... 75%", "45% [Working]", "[=====     ] 50%".
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[78()][0-9A-Za-z]?)")
_PROGRESS = re.compile(
    r"^\s*(?:"
    r"\(?Reading database \.\.\.\s*(?:\d{1,3}%)?\s*"
    r"|Progress: \[\s*\d{1,3}%\].*"
    r"|.*\.\.\.\s*\d{1,3}%\s*"
    r"|\d{1,3}% \[.*"
    r"|\[[#=.\s-]*\]\s*\d{1,3}%\s*"
    r")$"
)


class Cause(StrEnum):
    PATCH_FAILED = "patch-failed"
    HEALTH_FAILED = "health-failed"
    UNREACHABLE = "unreachable"
    ROLLED_BACK = "rolled-back"
    ROLLBACK_FAILED = "rollback-failed"
    GATE_REJECTED = "gate-rejected"
    EXCEPTION = "exception"
    CHANGE = "change"  # a rollout's change ticket (issue 23)


_SEVERITY = {
    Cause.ROLLBACK_FAILED: "critical",
    Cause.PATCH_FAILED: "high",
    Cause.HEALTH_FAILED: "high",
    Cause.ROLLED_BACK: "high",
    Cause.UNREACHABLE: "medium",
    Cause.GATE_REJECTED: "low",
    Cause.EXCEPTION: "low",
    Cause.CHANGE: "low",
}
_LEVELS = ("low", "medium", "high", "critical")
WHAT = {
    Cause.PATCH_FAILED: "patch failed",
    Cause.HEALTH_FAILED: "health check failed",
    Cause.UNREACHABLE: "unreachable",
    Cause.ROLLED_BACK: "rolled back",
    Cause.ROLLBACK_FAILED: "automatic rollback failed",
}


# --- labels and text --------------------------------------------------------------------------


def label(prefix: str, value: str) -> str:
    """A Jira label (no spaces; a conservative character set)."""
    return f"{prefix}-{_LABEL_UNSAFE.sub('_', value)}"[:255]


def labels_for(subject: str, cause: str) -> list[str]:
    return ["patchgate", label("pg-host", subject), label("pg-cause", cause)]


def idempotency_label(outbox_key: str) -> str:
    """The label a ticket carries so a retried create can find it."""
    return label("pg-outbox", outbox_key)


def redact(text: str) -> str:
    """Mask values that look like secrets (``password=…``, ``token: …``)."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)


def without_progress(output: str) -> list[str]:
    """The lines of a command's output as they were left on screen, without progress noise:
    a line rewritten with carriage returns keeps its last state; progress lines go."""
    lines = []
    for raw in _ANSI.sub("", output).splitlines():
        shown = next((part for part in reversed(raw.split("\r")) if part.strip()), "")
        if shown.strip() and not _PROGRESS.match(shown):
            lines.append(shown.rstrip())
    return lines


def severity_for(cause: Cause, *, criticality: str | None) -> str:
    """The ticket's severity: from the cause, one level up for a critical host. The
    host's risk score refines it further where the priority is chosen
    (:func:`refine_severity`, applied by the Jira deliverer with its configured thresholds)."""
    level = _LEVELS.index(_SEVERITY[cause])
    if criticality == "critical":
        level = min(level + 1, len(_LEVELS) - 1)
    return _LEVELS[level]


def refine_severity(
    severity: str, *, risk_score: int | None, thresholds: Sequence[int]
) -> tuple[str, int]:
    """The severity raised one level for every threshold the host's risk score (0-100,
    from its latest assessment) reaches, capped at ``critical``; returns it and the number
    of levels raised. No score (host never assessed) or no thresholds: unchanged. The
    score never lowers a severity."""
    if severity not in _LEVELS or risk_score is None:
        return severity, 0
    steps = sum(1 for t in thresholds if risk_score >= t)
    level = min(_LEVELS.index(severity) + steps, len(_LEVELS) - 1)
    return _LEVELS[level], level - _LEVELS.index(severity)


@dataclass(frozen=True)
class HostRisk:
    """A host's risk as its latest assessment put it: the riskiest fix's score and why."""

    score: int
    assessed_at: dt.datetime
    package: str | None
    reasons: tuple[str, ...]

    def line(self) -> str:
        what = f" ({self.package})" if self.package else ""
        why = f": {'; '.join(self.reasons[:4])}" if self.reasons else ""
        return f"Risk score: {self.score}{what}, assessed {self.assessed_at:%Y-%m-%d}{why}"


async def host_risk(session: AsyncSession, *, host: str) -> HostRisk | None:
    """The host's risk from its latest assessment (``assessments`` keeps only the latest
    per host), or None if it was never assessed. A host assessed clean scores 0."""
    row = await session.scalar(
        sa.select(Assessment)
        .where(Assessment.host == host)
        .order_by(Assessment.risk.desc(), Assessment.id)
        .limit(1)
    )
    if row is None:
        return None
    return HostRisk(
        score=int(row.risk),
        assessed_at=row.assessed_at,
        package=row.package or None,
        reasons=tuple(str(r) for r in row.reasons or ()),
    )


def _versions(run: HostRun, packages: Mapping[str, str]) -> list[str]:
    before = run.before_versions or {}
    after = run.after_versions or {}
    lines = []
    for name in sorted(packages):
        old = before.get(name, "?")
        new = after.get(name) if name in after else packages[name]
        lines.append(f"- {name}: {old or 'not installed'} -> {new}")
    return lines


def _summary_packages(packages: Mapping[str, str]) -> str:
    names = sorted(packages)
    if not names:
        return "the patch set"
    first = f"{names[0]} {packages[names[0]]}"
    return first if len(names) == 1 else f"{first} (+{len(names) - 1} more)"


async def host_advisories(
    session: AsyncSession, *, host: str, packages: Sequence[str]
) -> list[str]:
    """Advisory and CVE ids the host's latest assessment gives for these packages."""
    if not packages:
        return []
    ids: list[str] = []
    for advisories, cves in await session.execute(
        sa.select(Assessment.advisories, Assessment.cves)
        .where(Assessment.host == host, Assessment.package.in_(sorted(packages)))
        .order_by(Assessment.package)
    ):
        for item in [*(advisories or []), *(cves or [])]:
            if str(item) not in ids:
                ids.append(str(item))
    return ids


def host_ticket_text(
    *,
    run: HostRun,
    rollout: Rollout,
    ring: Ring | None,
    cause: Cause,
    risk: HostRisk | None = None,
    advisories: Sequence[str] = (),
) -> tuple[str, str]:
    """Summary and description for a host's ticket (secrets masked, output cut short)."""
    packages: Mapping[str, str] = (rollout.patchset or {}).get(run.platform or "", {})
    packages = {k: v for k, v in packages.items() if k not in (run.held_packages or [])}
    summary = f"[PatchGate] {run.host_name}: {WHAT[cause]} after {_summary_packages(packages)}"
    lines = [
        f"Host: {run.host_name}",
        f"Rollout: #{rollout.id} (plan {rollout.plan_name})",
        f"Ring: {ring.name if ring else '?'}",
        f"State: {run.state}",
    ]
    if run.platform:
        lines.append(f"Platform: {run.platform}")
    if rollout.patchset_hash:
        lines.append(f"Patch set: {rollout.patchset_hash[:12]}")
    if risk is not None:
        lines.append(risk.line())
    if packages:
        lines += ["Packages:", *_versions(run, packages)]
    advisories = list(advisories) or (rollout.plan_snapshot or {}).get("advisories") or []
    if advisories:
        lines.append(f"Advisories: {', '.join(map(str, advisories))}")
    if run.exit_code is not None:
        lines.append(f"Exit code: {run.exit_code}")
    if run.error:
        lines.append(f"Error: {redact(run.error)}")
    if run.output_tail:
        tail = without_progress(run.output_tail)[-OUTPUT_LINES:]
        lines += ["Last lines of output:", "{noformat}", *map(redact, tail), "{noformat}"]
    return summary[:255], "\n".join(lines)
