"""Windows devices through the real engine (issue 21, item 4): a fleet tool reports
Windows facts and KB updates with MSRC severities and CVSS; the engine keeps the OS
family and build, scores the risk from the tool's severity and CVSS, pins the KB with its
identity (hashed with it), names it by KB and title in Slack, and refuses the checks that
cannot run on a Windows host. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from integrations.slack.messages import package_lines
from tests.backendkit import BackendRig, mixed_hosts, mixed_plan
from workflows import assessment
from workflows.backends import HostAssessment
from workflows.db import Database, read_only
from workflows.models import Event, Host, HostRun, OutboxItem
from workflows.notify import PackageChange
from workflows.ports import (
    OS_FAMILY_VAR,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    PatchIdentity,
    UpgradablePackage,
)

WINDOWS = ("prod-01", "prod-02", "prod-03")
KB = "KB5034441"
TITLE = "2024-01 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems"
PLATFORM = "windows-10.0.22631-x64"


def windows_answer(name: str) -> HostAssessment:
    """What an Intune-like tool reports for a Windows 11 device: one security KB."""
    return HostAssessment(
        host=name,
        reachable=True,
        facts=HostFacts(
            os_id="windows",
            os_version="10.0.22631",
            arch="x64",
            kernel="10.0.22631.3007",
            package_manager="windows-update",
            boot_id=f"boot-{name}",
            uptime_seconds=60.0,
            reboot_required=False,
            os_family="windows",
            build="22631.3007",
        ),
        upgradable=[
            UpgradablePackage(
                name=KB,
                current=None,
                candidate="catalog-7f3a",
                security=True,
                identity=PatchIdentity(
                    kb=KB, catalog_id="catalog-7f3a", title=TITLE, classification="security"
                ),
            )
        ],
        advisories=[
            HostAdvisory(
                id=KB,
                packages={KB: None},
                cves=("CVE-2024-20666", "CVE-2024-20674"),
                severity="Important",  # MSRC's word
                cvss=8.1,
            )
        ],
    )


def windows_rig(db: Database, hosts: list[InventoryHost] | None = None) -> BackendRig:
    rig = BackendRig(db, hosts=hosts)
    plain = rig.batch.assess

    async def assess(
        hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        found = list(await plain(hosts, options))
        return [windows_answer(a.host) if a.host in WINDOWS else a for a in found]

    rig.batch.assess = assess  # type: ignore[method-assign]
    rig.known_exploited["CVE-2024-20674"] = None  # in the KEV list
    for name in WINDOWS:  # only the tool reaches the devices (no SSH on Windows)
        for step in ("facts", "list_upgradable", "simulate", "host_advisories", "preflight"):
            rig.executor.fail(name, step, "unreachable")
    return rig


async def _runs(db: Database, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(db) as session:
        runs = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in runs}


async def test_a_windows_kb_is_pinned_with_its_identity_hashed_and_named_by_kb_in_slack(
    db: Database,
) -> None:
    rig = windows_rig(db)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    # the pins' preflight is SSH's: the tool's Windows devices are never asked
    assert not [c for c in rig.executor.calls if c[0] in WINDOWS and c[1] == "preflight"]
    assert rollout.patchset is not None and rollout.patchset[PLATFORM] == {KB: "catalog-7f3a"}
    identity = {
        "kind": "update",
        "kb": KB,
        "catalog_id": "catalog-7f3a",
        "title": TITLE,
        "classification": "security",
    }
    assert rollout.patchset_updates == {PLATFORM: {KB: identity}}
    # the identity is part of the hash an approval is bound to; the packages stay as they were
    assert rollout.patchset_hash == assessment.patchset_hash(
        rollout.patchset, {PLATFORM: {KB: identity}}
    )
    assert rollout.patchset_hash != assessment.patchset_hash(rollout.patchset)
    async with read_only(db) as session:
        pinned = json.loads(
            await session.scalar(sa.select(Event.body).where(Event.kind == "rollout.pinned"))
        )
        notes = [m.payload for m in await session.scalars(sa.select(OutboxItem))]
        host = await session.scalar(sa.select(Host).where(Host.name == "prod-01"))
        stored = await assessment.latest(session, hosts=["prod-01"])
    assert pinned["data"]["updates"] == {PLATFORM: {KB: identity}}
    text = json.dumps(notes, ensure_ascii=False)
    assert f"{KB} — {TITLE} [security]" in text
    assert f"{KB}=catalog-7f3a" not in text
    # the gate and summary messages name it by KB and title too (their package lines)
    changes = [
        p
        for n in notes
        for p in (n.get("packages") or (n.get("results") or {}).get("packages") or [])
        if p["name"] == KB
    ]
    assert changes and {p["label"] for p in changes} == {f"{KB} — {TITLE} [security]"}
    line = package_lines([PackageChange.model_validate(changes[0])])
    assert line == f"`{KB}` — {TITLE} [security]"
    # the facts: family and build on the host's row
    assert host is not None and (host.os_family, host.build) == ("windows", "22631.3007")
    # the tool's severity word and CVSS feed the risk as an advisory's would
    (finding,) = stored["prod-01"][1]
    assert finding.severity == "high" and finding.cvss == 8.1
    assert finding.cves == ("CVE-2024-20666", "CVE-2024-20674")
    assert finding.reasons[0] == "CVSS 8.1" and finding.known_exploited
    assert finding.risk == round(8.1 * 5 + 25 + 5)  # KEV +25, criticality unset +5
    assert finding.identity is not None and finding.identity.kb == KB
    runs = await _runs(db, rollout_id)
    assert {runs[n].state for n in WINDOWS} == {"healthy"}
    assert rig.executor.installed_on("prod-02")[KB] == "catalog-7f3a"


async def test_a_linux_only_rollout_pins_no_update_identities_and_hashes_as_before(
    db: Database,
) -> None:
    rig = BackendRig(db)
    rollout_id = await rig.start(mixed_plan())
    await rig.approve_all(rig.engine(), rollout_id)
    rollout = await rig.rollout(rollout_id)
    assert rollout.patchset_updates is None
    assert rollout.patchset_hash == assessment.patchset_hash(rollout.patchset or {})
    async with read_only(db) as session:
        pinned = json.loads(
            await session.scalar(sa.select(Event.body).where(Event.kind == "rollout.pinned"))
        )
    assert "updates" not in pinned["data"]


SYSTEMD = {"name": "nginx", "type": "systemd", "unit": "nginx"}
HTTP = {"name": "http", "type": "http", "url": "http://{address}/health"}


async def test_a_systemd_check_on_hosts_the_inventory_names_windows_refuses_the_rollout(
    db: Database,
) -> None:
    hosts = [
        replace(h, vars={**h.vars, OS_FAMILY_VAR: "windows"}) if h.name in WINDOWS else h
        for h in mixed_hosts()
    ]
    rig = windows_rig(db, hosts)
    rollout_id = await rig.start(mixed_plan(health_checks=[HTTP, SYSTEMD]))
    await rig.engine().run_until_idle()
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed"
    assert rollout.reason is not None
    assert "health checks refused before any host was touched" in rollout.reason
    assert (
        "ring prod: its systemd check 'nginx' cannot run on windows host(s) "
        "prod-01, prod-02, prod-03"
    ) in rollout.reason
    assert rig.batch.assess_calls == [] and rig.executor.calls == []  # nothing touched


async def test_a_systemd_check_on_a_host_whose_facts_say_windows_fails_there_naming_why(
    db: Database,
) -> None:
    rig = windows_rig(db)  # the inventory names no family: only the tool's facts do
    rollout_id = await rig.start(mixed_plan(health_checks=[HTTP, SYSTEMD]))
    await rig.approve_all(rig.engine(), rollout_id)
    runs = await _runs(db, rollout_id)
    assert runs["dev-01"].state == "healthy"  # Linux: the systemd check ran
    windows = [runs[n] for n in WINDOWS if runs[n].health]
    assert windows, "a Windows device was checked"
    health = {r["name"]: r for r in windows[0].health or []}
    assert health["http"]["ok"] is True  # http runs on any family
    assert health["nginx"]["ok"] is False
    assert "cannot run on a windows host" in health["nginx"]["detail"]
    assert windows[0].state in ("unhealthy", "rolled_back")  # the plan rolls back on it
    async with read_only(db) as session:
        bodies = [
            json.loads(b)["data"]
            for b in await session.scalars(sa.select(Event.body).where(Event.kind == "host.state"))
        ]
    errors = [d.get("error") or "" for d in bodies if d.get("host") == windows[0].host_name]
    assert any("nginx: a systemd check runs on the host over SSH" in e for e in errors)
