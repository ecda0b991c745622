"""The engine refreshes the rollout's hosts' assessments, then pins the patch set from
the fresh assessments of every host: the plan's baseline (severity, approve_after_days,
include/exclude/holds) picks the fixes, the assessed candidate versions are pinned (one
per package for the platform, each host gets its share), and the hash is the one every
gate shows. Hosts without a fresh assessment refuse the pin, by name."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from tests.enginekit import Rig, make_plan
from workflows import assessment
from workflows.assessment import patchset_hash
from workflows.db import Database, read_only, unit_of_work
from workflows.models import Event, HostRun, OutboxItem
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
    assert how["source"] == "assessment" and how["hosts"] == 3
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


async def test_a_version_released_after_the_last_assessment_is_seen_by_the_refresh(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rig.executor.state.repo["openssl"].append("3.0.14-1")  # released after the assessment
    rollout_id = await rig.start(one_ring(exclude=["demo-app"]))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.14-1"}}
    assert rig.executor.installed_on("web-2")["openssl"] == "3.0.14-1"
    async with read_only(db) as session:
        stored = await assessment.latest(session, hosts=["web-2"])
    assert [(f.package, f.candidate) for f in stored["web-2"][1]] == [
        ("demo-app", "1.1"),
        ("openssl", "3.0.14-1"),
    ] or sorted((f.package, f.candidate) for f in stored["web-2"][1]) == [
        ("demo-app", "1.1"),
        ("openssl", "3.0.14-1"),
    ]


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
    assert "baseline over the fresh assessments of 3 host(s) selected 1, left out 1" in texts


async def test_hosts_whose_refresh_fails_and_whose_assessment_is_stale_refuse_the_pin_by_name(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(days=3))  # older than the 24 h default
    rig.executor.fail("web-2", "list_upgradable")
    rig.executor.fail("web-3", "list_upgradable")
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    reason = rollout.reason or ""
    assert "no fresh assessment for 2 host(s): web-2 (" in reason
    assert "web-3 (" in reason and "web-1" not in reason
    assert "patchgate assess --refresh" in reason
    assert all(rig.executor.apply_count(h.name) == 0 for h in HOSTS)


async def test_a_host_not_refreshed_uses_its_fresh_assessment_and_is_a_coverage_gap(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    rig.executor.fail("web-3", "list_upgradable")
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    pinned = await pinned_event(db, rollout_id)
    assert list(pinned["coverage_gaps"]) == ["web-3"]
    assert list(pinned["baseline"]["debian-12-amd64"]["coverage_gaps"]) == ["web-3"]
    assert rig.executor.installed_on("web-3")["openssl"] == "3.0.13-1"


async def test_without_stored_assessments_the_refresh_assesses_every_host_before_pinning(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    rollout_id = await rig.start(one_ring(exclude=["openssl"]))
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded"
    assert rollout.patchset == {"debian-12-amd64": {"demo-app": "1.1"}}
    assert sorted(h for h, step in rig.executor.calls if step == "list_upgradable") == [
        "web-1",
        "web-2",
        "web-3",
    ]


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
    assert how["simulated_on"] == ["web-2"]


async def test_an_already_patched_first_host_does_not_empty_the_set_for_the_others(
    db: Database,
) -> None:
    """Issue 16: the set was pinned from the first host in ring order; already patched,
    it made the set "nothing" and the other hosts stayed unpatched, reported healthy."""
    rig = Rig(db, hosts=HOSTS)
    rig.executor.state.hosts["web-1"].installed.update({"openssl": "3.0.13-1", "demo-app": "1.1"})
    rollout_id = await rig.start(one_ring())
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    assert rollout.patchset == {"debian-12-amd64": {"demo-app": "1.1", "openssl": "3.0.13-1"}}
    for name in ("web-2", "web-3"):
        assert rig.executor.installed_on(name)["openssl"] == "3.0.13-1"
        assert rig.executor.installed_on(name)["demo-app"] == "1.1"
    states = await rig.host_states(rollout_id)
    assert states == {"web-1": "up_to_date", "web-2": "healthy", "web-3": "healthy"}
    assert rig.executor.apply_count("web-1") == 0


async def test_hosts_that_disagree_on_a_version_get_the_agreed_one_or_are_not_fully_patched(
    db: Database,
) -> None:
    rig = Rig(db, hosts=HOSTS)
    rig.executor.state.repo["openssl"].append("3.0.14-1")
    rollout_id = await rig.start(one_ring(exclude=["demo-app"]))
    # web-3 sees an older repository state: its candidate is 3.0.13-1 (a skewed mirror)
    real = rig.executor.list_upgradable

    async def skewed(host: InventoryHost) -> Any:
        listed = list(await real(host))
        if host.name != "web-3":
            return listed
        return [
            dataclasses.replace(p, candidate="3.0.13-1") if p.name == "openssl" else p
            for p in listed
        ]

    rig.executor.list_upgradable = skewed  # type: ignore[method-assign]
    await rig.engine().run_until_idle()

    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset == {"debian-12-amd64": {"openssl": "3.0.14-1"}}
    assert rollout.state == "succeeded"
    assert "1 host(s) not fully patched" in (rollout.reason or "")
    async with read_only(db) as session:
        runs = {
            r.host_name: r
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
    assert runs["web-1"].packages == {"openssl": "3.0.14-1"}
    assert runs["web-3"].packages == {}
    assert runs["web-3"].left_over == {
        "openssl": "3.0.13-1 is upgradable here; the set pins 3.0.14-1 (most hosts)"
    }
    assert runs["web-3"].state == "up_to_date"


async def test_a_host_slower_than_the_refresh_bound_is_a_coverage_gap_not_a_wait(
    db: Database,
) -> None:
    import asyncio

    rig = Rig(db, hosts=HOSTS)
    await assess(db, at=NOW - dt.timedelta(hours=1))
    real = rig.executor.list_upgradable

    async def slow(host: InventoryHost) -> Any:
        if host.name == "web-2":
            await asyncio.sleep(30)
        return await real(host)

    rig.executor.list_upgradable = slow  # type: ignore[method-assign]
    engine = rig.engine(refresh_timeout=0.5)
    rollout_id = await rig.start(one_ring(approve_after_days=30))
    await asyncio.wait_for(engine.run_until_idle(), 20)

    pinned = await pinned_event(db, rollout_id)
    assert pinned["coverage_gaps"] == {"web-2": "no answer within 0.5 s"}
    assert (await rig.rollout(rollout_id)).state == "succeeded"
    async with read_only(db) as session:
        refreshed = await session.scalar(
            sa.select(Event).where(Event.kind == "rollout.assessments_refreshed")
        )
    assert refreshed is not None
    assert json.loads(refreshed.body)["data"]["refreshed"] == ["web-1", "web-3"]
