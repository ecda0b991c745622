"""coverage.csv and the fix figures: per host, in pages of HOST_PAGE hosts, when it was last
assessed and patched, and for each security fix it needed when that fix was installed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import FixDetection, Host, HostAssessment, HostRun, Rollout
from workflows.reports._figures import (
    Detection,
    Figures,
    PatchRun,
    VersionCompare,
    fix_patched_at,
    severity_key,
)
from workflows.reports._zipout import ZipOut, rows, ts

HOST_PAGE = 1000


async def write_coverage(
    session: AsyncSession,
    out: ZipOut,
    figures: Figures,
    *,
    sla_days: Mapping[str, int],
    compare: VersionCompare | None,
) -> None:
    period = figures.period
    header = [
        "host",
        "environment",
        "criticality",
        "reachable",
        "first_seen",
        "last_assessed",
        "assessed_in_period",
        "last_patched",
        "patched_in_period",
        "fixes_open_at_end",
        "fixes_overdue_at_end",
        "gaps",
        "reopened_fixes",
    ]
    last_name: str | None = None
    with out.csv("coverage.csv", header) as writer:
        while True:
            query = (
                sa.select(
                    Host.name,
                    Host.environment,
                    Host.criticality,
                    Host.reachable,
                    Host.last_error,
                    Host.created_at,
                    Host.facts_at,
                    Host.package_manager,
                )
                .where(Host.created_at < period.until)
                .order_by(Host.name)
                .limit(HOST_PAGE)
            )
            if last_name is not None:
                query = query.where(Host.name > last_name)
            hosts = await rows(session, query)
            if not hosts:
                break
            last_name = hosts[-1].name
            page = await _coverage_page(session, figures, hosts, sla_days=sla_days, compare=compare)
            for line in page:
                writer.row(line)
            if len(hosts) < HOST_PAGE:
                break


async def _coverage_page(
    session: AsyncSession,
    figures: Figures,
    hosts: Sequence[Any],
    *,
    sla_days: Mapping[str, int],
    compare: VersionCompare | None,
) -> list[list[Any]]:
    period = figures.period
    names = [h.name for h in hosts]
    last_assessed: dict[str, dt.datetime] = {
        host: at
        for host, at in await rows(
            session,
            sa.select(HostAssessment.host, sa.func.max(HostAssessment.assessed_at))
            .where(HostAssessment.host.in_(names), HostAssessment.assessed_at < period.until)
            .group_by(HostAssessment.host),
        )
    }
    assessed: dict[str, list[dt.datetime]] = {}
    for host, at in await rows(
        session,
        sa.select(HostAssessment.host, HostAssessment.assessed_at).where(
            HostAssessment.host.in_(names),
            HostAssessment.assessed_at >= period.since,
            HostAssessment.assessed_at < period.until,
        ),
    ):
        assessed.setdefault(host, []).append(at)
    runs: dict[str, list[PatchRun]] = {}
    run_rows = await rows(
        session,
        sa.select(
            HostRun.host_name,
            HostRun.state,
            HostRun.finished_at,
            HostRun.after_versions,
            HostRun.platform,
            Rollout.started_at,
        )
        .join(Rollout, Rollout.id == HostRun.rollout_id)
        .where(
            HostRun.host_name.in_(names),
            sa.or_(
                sa.and_(HostRun.state == "healthy", HostRun.finished_at < period.until),
                sa.and_(Rollout.started_at >= period.since, Rollout.started_at < period.until),
            ),
        )
        .order_by(HostRun.host_name, HostRun.finished_at, HostRun.id),
    )
    for r in run_rows:
        if r.platform is not None and period.contains(r.started_at):
            assessed.setdefault(r.host_name, []).append(r.started_at)  # facts gathered
            last_assessed[r.host_name] = max(
                last_assessed.get(r.host_name, r.started_at), r.started_at
            )
        if r.state == "healthy" and r.finished_at is not None and r.finished_at < period.until:
            runs.setdefault(r.host_name, []).append(PatchRun(r.finished_at, r.after_versions or {}))
    detections: dict[str, list[list[Detection]]] = {}  # per fix: its episodes
    for d in await rows(
        session,
        sa.select(
            FixDetection.host,
            FixDetection.package,
            FixDetection.candidate,
            FixDetection.severity,
            FixDetection.published,
            FixDetection.first_detected_at,
            FixDetection.reopened_at,
        )
        .where(FixDetection.host.in_(names), FixDetection.first_detected_at < period.until)
        .order_by(FixDetection.host, FixDetection.package, FixDetection.candidate),
    ):
        first = Detection(
            host=d.host,
            package=d.package,
            candidate=d.candidate,
            severity=severity_key(d.severity),
            available=d.published or d.first_detected_at,
            first_detected=d.first_detected_at,
        )
        # A reopened fix is a new episode from the time it was found again.
        reopened = [dt.datetime.fromisoformat(t) for t in d.reopened_at or []]
        detections.setdefault(d.host, []).append(
            [
                first,
                *(
                    replace(first, available=at, first_detected=at)
                    for at in reopened
                    if at < period.until
                ),
            ]
        )
    lines = []
    for h in hosts:
        host_runs = runs.get(h.name, [])
        open_fixes = overdue = 0
        history = []
        for episodes in detections.get(h.name, []):
            story = [f"detected {ts(episodes[0].first_detected)}"]
            for number, detection in enumerate(episodes):
                if number:
                    story.append(f"reopened {ts(detection.first_detected)}")
                following = (
                    episodes[number + 1].first_detected if number + 1 < len(episodes) else None
                )
                patched_at = fix_patched_at(
                    detection,
                    [r for r in host_runs if following is None or r.finished < following],
                    manager=h.package_manager,
                    compare=compare,
                )
                figures.add_fix(detection, patched_at)
                if patched_at is not None and patched_at < period.until:
                    story.append(f"closed {ts(patched_at)}")
                elif following is None:
                    open_fixes += 1
                    sla = sla_days.get(detection.severity)
                    age = (period.until - detection.available).total_seconds() / 86400
                    overdue += sla is not None and age > sla
            if len(episodes) > 1:
                history.append(f"{episodes[0].package} {episodes[0].candidate}: {', '.join(story)}")
        facts_at = h.facts_at if h.facts_at is not None and h.facts_at < period.until else None
        last = max((t for t in (last_assessed.get(h.name), facts_at) if t), default=None)
        in_period = sorted(assessed.get(h.name, []))
        patched = [r.finished for r in host_runs if period.contains(r.finished)]
        gaps = []
        if last is None:
            gaps.append("never assessed")
        elif not in_period:
            gaps.append("not assessed in the period")
        if h.reachable is False:
            gaps.append(f"unreachable: {h.last_error or 'no answer'}")
        if overdue:
            gaps.append(f"{overdue} fix(es) past SLA")
        figures.add_host(created=h.created_at, assessed=in_period, patched=patched, gap=bool(gaps))
        lines.append(
            [
                h.name,
                h.environment,
                h.criticality,
                {True: "yes", False: "no", None: ""}[h.reachable],
                ts(h.created_at),
                ts(last),
                "yes" if in_period else "no",
                ts(host_runs[-1].finished if host_runs else None),
                "yes" if patched else "no",
                open_fixes,
                overdue,
                "; ".join(gaps),
                "; ".join(history),
            ]
        )
    return lines
