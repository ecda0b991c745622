"""Many hosts' assessments stored at once (the pre-pin refresh, `patchgate gather`): the
same rows as one host at a time, in a number of statements that does not grow with the
number of hosts (issue 24: five statements a host were most of a rollout's SQL)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from tests.reportkit import finding
from workflows import assessment
from workflows.db import Database, read_only, unit_of_work
from workflows.models import Assessment, FixDetection, HostAssessment

FIRST = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SECOND = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
HOSTS = 120  # past IN_CHUNK's half, so a chunked IN list is exercised when it is smaller


def findings(host: str, *, second: bool = False) -> list[assessment.Finding]:
    n = int(host[-3:])
    if n % 5 == 0:
        return []  # assessed and clean
    found = [
        finding(
            host,
            "openssl",
            "3.0.13-1",
            current="3.0.11-1",
            severity="high" if second else None,
            cves=("CVE-2026-0001",) if not second else ("CVE-2026-0001", "CVE-2026-0002"),
        ),
        finding(host, "bash", "5.2-2", current="5.2-1", security=False),
    ]
    if n % 7 == 0:  # listed twice in one assessment (two advisories of one fix)
        found.append(finding(host, "openssl", "3.0.13-1", advisories=("DSA-1",), cvss=7.5))
    return found


class Statements:
    def __init__(self, db: Database) -> None:
        self.db, self.seen = db, Counter[str]()

    def __enter__(self) -> Statements:
        sa.event.listen(self.db.engine.sync_engine, "before_cursor_execute", self.count)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.db.engine.sync_engine, "before_cursor_execute", self.count)

    def count(self, _c: Any, _k: Any, statement: str, *_: Any) -> None:
        self.seen[" ".join(statement.split()[:3])] += 1


async def rows(db: Database, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows of the hosts named ``prefix…``, host names without the prefix."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with read_only(db) as session:
        for model, columns in (
            (Assessment, ("host", "package", "current", "candidate", "cves", "advisories",
                          "severity", "cvss", "security", "risk", "assessed_at")),
            (HostAssessment, ("host", "assessed_at", "fixes")),
            (FixDetection, ("host", "package", "current", "candidate", "severity", "cvss",
                            "advisories", "cves", "first_detected_at", "last_detected_at",
                            "reopened_at")),
        ):  # fmt: skip
            found = await session.execute(
                sa.select(*(getattr(model, c) for c in columns)).where(
                    model.host.startswith(prefix)
                )
            )
            out[model.__tablename__] = sorted(
                (r[0][len(prefix) :], *(str(v) for v in r[1:])) for r in found
            )
    return out


async def test_many_hosts_at_once_store_what_one_at_a_time_stores_in_few_statements(
    db: Database,
) -> None:
    one = [f"one-{i:03d}" for i in range(HOSTS)]
    many = [f"many-{i:03d}" for i in range(HOSTS)]
    for at, second in ((FIRST, False), (SECOND, True)):
        async with unit_of_work(db) as session:
            for host in one:
                await assessment.store(
                    session, host=host, findings=findings(host, second=second), at=at
                )
        with Statements(db) as statements:
            async with unit_of_work(db) as session:
                await assessment.store_many(
                    session, [(h, findings(h, second=second)) for h in many], at=at
                )
        # DELETE, INSERT assessments, INSERT host_assessments, SELECT fix_detections, then
        # INSERT fix_detections (first time) or their UPDATEs (second): none per host
        assert sum(statements.seen.values()) <= 10, statements.seen
    assert await rows(db, "one-") == await rows(db, "many-")
    fixes = (await rows(db, "many-"))["fix_detections"]
    assert len(fixes) == HOSTS - HOSTS // 5  # one per host with a security fix, kept
    assert all("CVE-2026-0002" in f[7] and f[4] == "high" for f in fixes)  # updated


async def test_a_host_named_twice_keeps_its_last_assessment(db: Database) -> None:
    async with unit_of_work(db) as session:
        await assessment.store_many(
            session,
            [("web-001", findings("web-001")), ("web-001", [])],
            at=FIRST,
        )
    async with read_only(db) as session:
        latest = await assessment.latest(session, hosts=["web-001"])
    assert latest == {"web-001": (latest["web-001"][0], [])}
