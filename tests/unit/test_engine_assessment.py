"""The engine pins the patch set from stored assessments when they are fresh: the plan's
baseline (severity, approve_after_days, include/exclude/holds) picks the fixes, the
assessed candidate versions are pinned, and the hash is the one every gate shows."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from tests.enginekit import Rig, make_plan
from workflows import assessment
from workflows.assessment import patchset_hash
from workflows.db import Database, read_only, unit_of_work
from workflows.models import Event, OutboxItem
from workflows.ports import InventoryHost

NOW = dt.datetime(2026, 1, 4, 2, 0, tzinfo=dt.UTC)
HOSTS = [InventoryHost(name=f"web-{i}", groups=frozenset({"web"})) for i in (1, 2, 3)]


def finding(host: str, package: str, candidate: str, **kw: Any) -> assessment.Finding:
    values: dict[str, Any] = {
        "host": host,
        "package": package,
        "current": kw.pop("current", None),
        "candidate": candidate,
        "advisories": (),
        "cves": (),
        "severity": None,
        "cvss": None,
        "known_exploited": False,
        "published": None,
        "security": False,
    }
    values.update(kw)
    return assessment.Finding(**values)


async def assess(db: Database, *, at: dt.datetime, hosts: list[str] | None = None) -> None:
    """openssl: a high-severity fix published 40 days ago; demo-app: a medium one, 2 days."""
    async with unit_of_work(db) as session:
        for host in hosts or [h.name for h in HOSTS]:
            findings = [
                finding(
                    host,
                    "openssl",
                    "3.0.13-1",
                    current="3.0.11-1",
                    cves=("CVE-2026-0001",),
                    advisories=("DSA-1",),
                    severity="high",
                    security=True,
                    published=NOW - dt.timedelta(days=40),
                ),
                finding(
                    host,
                    "demo-app",
                    "1.1",
                    current="1.0",
                    cves=("CVE-2026-0002",),
                    advisories=("DSA-2",),
                    severity="medium",
                    security=True,
                    published=NOW - dt.timedelta(days=2),
                ),
            ]
            await assessment.store(session, host=host, findings=findings, at=at)


def one_ring(**packages: Any) -> Any:
    return make_plan(
        rings=[{"name": "web", "hosts": "group:web", "batch": 3}],
        packages={"include": ["*"], **packages},
    )


async def pinned_event(db: Database, rollout_id: int) -> dict[str, Any]:
    async with read_only(db) as session:
        event = await session.scalar(
            sa.select(Event).where(Event.kind == "rollout.pinned", Event.rollout_id == rollout_id)
        )
    assert event is not None
    return dict(json.loads(event.body)["data"])


async def test_fresh_assessments_pin_only_the_fixes_old_enough_for_the_baseline(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.state
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    assert rollout.patchset_hash == patchset_hash(rollout.patchset)
    for host in HOSTS:
        assert rig.executor.installed_on(host.name)["openssl"] == "3.0.13-1"
        assert rig.executor.installed_on(host.name)["demo-app"] == "1.0"  # too young
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how["source"] == "assessment" and how["reference"] == "web-1"
    assert how["selected"] == ["openssl"]
    assert how["left_out"] == {"demo-app": "published 2 days ago; the baseline waits 30"}


async def test_min_severity_from_the_plan_selects_by_the_assessed_severity(db: Database) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rollout_id = await rig.start(one_ring(min_severity="high"))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how["left_out"] == {"demo-app": "severity medium is below high"}


async def test_the_assessed_candidate_is_pinned_even_when_a_newer_version_appeared(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rig.executor.state.repo["openssl"].append("3.0.14-1")  # released after the assessment
    rollout_id = await rig.start(one_ring(exclude=["demo-app"]))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    assert rig.executor.installed_on("web-2")["openssl"] == "3.0.13-1"


async def test_the_gate_shows_and_binds_the_hash_of_the_set_built_from_assessments(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    plan = make_plan(
        packages={"include": ["*"], "approve_after_days": 30},
        rings=[
            {"name": "canary", "hosts": "host:web-1", "batch": 1},
            {
                "name": "rest",
                "hosts": "group:web",
                "batch": 2,
                "gate": {"type": "approval", "approvers": {"users": ["U0APPROVE1"]}},
            },
        ],
    )
    rollout_id = await rig.start(plan)
    await rig.engine().run_until_idle()

    gate = await rig.open_gate(rollout_id)
    assert gate is not None
    assert gate.patchset_hash == patchset_hash({"debian-12-amd64": {"openssl": "3.0.13-1"}})
    async with read_only(db) as session:
        texts = " ".join(str(i.payload) for i in await session.scalars(sa.select(OutboxItem)))
    assert "baseline over the assessments (reference web-1) selected 1, left out 1" in texts


async def test_stale_assessments_with_a_dated_baseline_fail_the_rollout_before_any_host(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(days=3))  # older than the 24 h default
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "patchgate assess --refresh" in (rollout.reason or "")
    assert "approve_after_days" in (rollout.reason or "")
    assert all(rig.executor.apply_count(h.name) == 0 for h in HOSTS)


async def test_without_fresh_assessments_a_name_only_baseline_uses_the_hosts_upgradable_list(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(days=3))
    rollout_id = await rig.start(one_ring(exclude=["openssl"]))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    assert rollout.patchset == {"debian-12-amd64": {"demo-app": "1.1"}}
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how == {"source": "live", "reference": "web-1"}


async def test_one_fresh_host_decides_for_its_platform_and_the_others_are_listed(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1), hosts=["web-2"])
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how["reference"] == "web-2"
    assert sorted(how["not_assessed"]) == ["web-1", "web-3"]
    assert rig.executor.installed_on("web-3")["openssl"] == "3.0.13-1"


async def test_assessed_fixes_that_no_longer_install_fail_the_rollout_before_any_host(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rig.executor.fail("web-1", "simulate")  # apt-get -s exits 100 (e.g. version gone)
    rollout_id = await rig.start(one_ring(exclude=["demo-app"]))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert "the assessed fixes (openssl=3.0.13-1) cannot be installed on web-1" in (
        rollout.reason or ""
    )
    assert all(rig.executor.apply_count(h.name) == 0 for h in HOSTS)


async def test_an_unreachable_reference_host_passes_the_pinning_to_the_next_assessed_one(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rig.executor.fail("web-1", "simulate", "unreachable")
    plan = make_plan(
        rings=[{"name": "web", "hosts": "group:web", "batch": 3, "failure_budget": 1}],
        packages={"include": ["*"], "approve_after_days": 30},
    )
    rollout_id = await rig.start(plan)
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    states = await rig.host_states(rollout_id)
    assert states == {"web-1": "unreachable", "web-2": "healthy", "web-3": "healthy"}
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how["reference"] == "web-2"


async def test_the_platform_is_pinned_on_the_assessed_host_with_the_most_selected_fixes(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    async with unit_of_work(db) as session:  # web-1 already has the openssl fix
        young = finding(
            "web-1",
            "demo-app",
            "1.1",
            current="1.0",
            severity="medium",
            security=True,
            published=NOW - dt.timedelta(days=2),
        )
        await assessment.store(session, host="web-1", findings=[young], at=NOW)
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.13-1"}}
    how = (await pinned_event(db, rollout_id))["baseline"]["debian-12-amd64"]
    assert how["reference"] == "web-2"  # not web-1, the first in ring order
