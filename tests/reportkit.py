"""Shared by the report tests: a real rollout driven by the engine on assessed hosts, and
a way to tamper with a bundle."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import sqlalchemy as sa

from tests.enginekit import APPROVER_1, APPROVER_2, Rig
from workflows import assessment
from workflows.db import Database, unit_of_work
from workflows.models import Host
from workflows.reports import Period

UTC = dt.UTC
ASSESSED = dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
PUBLISHED = dt.datetime(2025, 12, 28, 4, 0, tzinfo=UTC)
PERIOD = Period(dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 1, 15, tzinfo=UTC))
FILES = {
    "rollouts.csv",
    "host_runs.csv",
    "patchset.csv",
    "approvals.csv",
    "exceptions.csv",
    "coverage.csv",
    "events.jsonl",
    "summary.html",
    "manifest.json",
}


def finding(host: str, package: str, candidate: str, **kw: object) -> assessment.Finding:
    values: dict[str, object] = {
        "host": host,
        "package": package,
        "current": None,
        "candidate": candidate,
        "advisories": (),
        "cves": (),
        "severity": None,
        "cvss": None,
        "known_exploited": False,
        "published": None,
        "security": True,
    }
    values.update(kw)
    return assessment.Finding(**values)  # type: ignore[arg-type]


async def drive_rollout(db: Database) -> Rig:
    """Assess every host, then patch them: dev and staging at 02:00, prod six hours later
    (prod-06 fails its health check and is rolled back)."""
    rig = Rig(db)
    async with unit_of_work(db) as session:
        for host in rig.hosts:
            await assessment.store(
                session,
                host=host.name,
                at=ASSESSED,
                findings=[
                    finding(
                        host.name,
                        "openssl",
                        "3.0.13-1",
                        current="3.0.11-1",
                        severity="critical",
                        cves=("CVE-2026-0001",),
                        published=PUBLISHED,
                    ),
                    finding(host.name, "demo-app", "1.1", current="1.0", severity="medium"),
                ],
            )
    rig.executor.fail("prod-06", "health", "unhealthy")
    rollout_id = await rig.start()
    engine = rig.engine()
    await engine.run_until_idle()
    staging = await rig.open_gate(rollout_id)
    assert staging is not None
    await rig.vote(staging, APPROVER_1)
    await engine.run_until_idle()
    rig.clock.advance(dt.timedelta(hours=6))
    prod = await rig.open_gate(rollout_id)
    assert prod is not None
    await rig.vote(prod, APPROVER_1)
    await rig.vote(prod, APPROVER_2)
    await engine.run_until_idle()
    assert (
        await rig.rollout(rollout_id)
    ).state == "succeeded_with_failures"  # prod-06 within budget
    assert (await rig.host_states(rollout_id))["prod-06"] == "rolled_back"
    async with unit_of_work(db) as session:  # Host.created_at is wall-clock time
        await session.execute(
            sa.update(Host).values(created_at=dt.datetime(2025, 12, 1, tzinfo=UTC))
        )
    return rig


def rewrite(src: Path, dst: Path, name: str, data: bytes, manifest: dict | None = None) -> None:
    """A copy of the bundle with one member replaced (and optionally a new manifest)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            body = old.read(info.filename)
            if info.filename == name:
                body = data
            if info.filename == "manifest.json" and manifest is not None:
                body = json.dumps(manifest).encode()
            new.writestr(info, body)
