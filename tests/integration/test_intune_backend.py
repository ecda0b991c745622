"""Contract tests of the ``intune`` backend's jobs: the real Graph client over HTTP
against the Microsoft Graph emulator (tests/fakes/intune_graph_api.py): deployments per
batch followed to per-device results, monitoring rules, halt, a crash, a lost answer,
a resumed job, what the service refuses, a changed shape."""

from __future__ import annotations

import pytest

from integrations.backends.intune import (
    IntuneBackend,
    IntuneRejected,
    IntuneUnavailable,
)
from tests import intunekit
from tests.intunekit import (
    BUILD,
    BUILD10,
    KB,
    KB10,
    GraphRig,
    deploy_posts,
    no_sleep,
    work,
)
from workflows.backends import BatchWork
from workflows.ports import InventoryHost

# the contract tests' fixtures (tests/intunekit.py)
graph = intunekit.graph
rig = intunekit.rig


async def test_a_batch_is_one_deployment_of_the_catalog_entry_followed_to_applied(
    rig: GraphRig,
) -> None:
    backend = rig.backend()
    opts = {"days_until_forced_reboot": 2, "expedite": True}
    job = await backend.submit(work("pg-1-r2-b0-intune-apply", ["win1", "win2"], opts))
    (dep,) = rig.graph.deployments.values()
    assert job.job_id == dep.id and dep.entry.short_name == "2026.11 B"
    (body,) = deploy_posts(rig.graph)
    assert body["content"]["@odata.type"] == "#microsoft.graph.windowsUpdates.catalogContent"
    assert body["settings"]["expedite"] == {"isExpedited": True}
    assert body["settings"]["userExperience"] == {"daysUntilForcedReboot": 2}
    names = {rig.graph.by_name(n).aad_id for n in ("win1", "win2")}
    assert rig.graph.audiences[dep.audience_id] == names
    enrolled = [b for p, b in rig.graph.posts if p.endswith("enrollAssets")]
    assert enrolled[0]["updateCategory"] == "quality"
    first = await backend.follow(job, opts, wait=0)
    assert not first.done and first.state == "scheduled"  # then offering
    status = await backend.follow(job, opts, wait=5)
    assert status.done and status.state == "successful"
    assert status.detail == "deployments: offering"
    assert {h: o.status for h, o in status.hosts.items()} == {"win1": "applied", "win2": "applied"}
    assert status.hosts["win1"].after == {KB: BUILD}
    assert status.hosts["win1"].output.startswith(f"deployment {dep.id}: win1 runs build {BUILD}")
    assert rig.graph.by_name("win3").build == "10.0.22631.4460"  # not in the batch


async def test_devices_on_two_builds_share_the_entry_and_one_deployment(rig: GraphRig) -> None:
    backend = rig.backend()
    job = await backend.submit(work("pg-1-r2-b1-intune-apply", ["win1", "win10"]))
    assert len(rig.graph.deployments) == 1
    status = await backend.follow(job, {}, wait=5)
    assert status.hosts["win10"].after == {KB10: BUILD10}


async def test_a_failed_update_is_the_devices_failure_and_the_monitoring_rule_pauses(
    rig: GraphRig,
) -> None:
    rig.graph.by_name("win2").fail = "0x800f0922"
    opts = {
        "update_ring_id": rig.graph.ring_id,
        "monitoring": {"signal": "rollback", "threshold": 40, "action": "pauseDeployment"},
    }
    backend = rig.backend()
    job = await backend.submit(work("pg-1-r2-b2-intune-apply", ["win1", "win2"], opts))
    rule = deploy_posts(rig.graph)[0]["settings"]["monitoring"]["monitoringRules"][0]
    assert (rule["signal"], rule["threshold"], rule["action"]) == (
        "rollback",
        40,
        "pauseDeployment",
    )
    status = await backend.follow(job, opts, wait=5)
    assert status.done and status.state == "failed"
    assert status.hosts["win1"].status == "applied"
    win2 = status.hosts["win2"]
    assert win2.status == "failed" and win2.failed_task == "install"
    assert "Windows Update reports failed" in win2.output and job.job_id in win2.output
    (dep,) = rig.graph.deployments.values()
    assert (dep.effective, dep.reasons) == ("paused", ["pausedByMonitoring"])


async def test_an_asset_the_service_cannot_update_fails_with_its_error(rig: GraphRig) -> None:
    rig.graph.by_name("win3").asset_error = "invalidAzureADJoin"
    backend = rig.backend()
    job = await backend.submit(work("pg-1-r2-b3-intune-apply", ["win3"]))
    status = await backend.follow(job, {}, wait=5)
    assert status.hosts["win3"].failed_task == "enrollment"
    assert "has errors: invalidAzureADJoin" in status.hosts["win3"].output


async def test_halt_pauses_the_deployment_once_and_the_devices_left_are_skipped(
    rig: GraphRig,
) -> None:
    backend = rig.backend()
    job = await backend.submit(work("pg-1-r2-b4-intune-apply", ["win1", "win2"]))
    await backend.halt(job, {}, reason="gate rejected by @alice")
    (dep,) = rig.graph.deployments.values()
    assert (dep.effective, dep.requested, dep.reasons) == ("paused", "paused", ["pausedByRequest"])
    patches = [b for p, b in rig.graph.posts if p.endswith(dep.id)]
    assert patches == [
        {
            "@odata.type": "#microsoft.graph.windowsUpdates.deployment",
            "state": {
                "@odata.type": "microsoft.graph.windowsUpdates.deploymentState",
                "requestedValue": "paused",
            },
        }
    ]
    await backend.halt(job, {}, reason="again")
    assert len([p for p, _ in rig.graph.posts if p.endswith(dep.id)]) == 1  # idempotent
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.state == "paused"
    assert {o.status for o in status.hosts.values()} == {"skipped"}
    assert "paused by request" in status.hosts["win1"].output


async def test_a_halt_before_the_deployment_exists_means_it_is_never_created(rig: GraphRig) -> None:
    rig.graph.fail_next(503, path="/updates/deployments")  # not retried: a POST
    backend = rig.backend()
    batch = work("pg-1-r2-b0-intune-apply", ["win1"])
    with pytest.raises(IntuneUnavailable, match="503"):
        await backend.submit(batch)
    job = await backend.find(batch.key, {})
    assert job is not None and job.job_id == "?"  # the intent, no deployment yet
    await backend.halt(job, {}, reason="budget spent")
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.hosts["win1"].status == "skipped"
    tried = [p for m, p in rig.graph.requests if m == "POST" and p.endswith("/deployments")]
    assert rig.graph.deployments == {} and len(tried) == 1  # the refused try, never again


async def test_a_resumed_job_creates_its_deployment_or_fails_its_devices_with_why(
    rig: GraphRig,
) -> None:
    rig.graph.fail_next(503, path="/updates/deployments")
    backend = rig.backend()
    with pytest.raises(IntuneUnavailable):
        await backend.submit(work("pg-1-r2-b0-intune-apply", ["win1"]))
    with pytest.raises(IntuneUnavailable):
        rig.graph.fail_next(503, path="/updates/deployments")
        await backend.submit(work("pg-1-r2-b1-intune-apply", ["win2"]))
    job = await backend.find("pg-1-r2-b0-intune-apply", {})
    assert job is not None
    done = await backend.follow(job, {}, wait=5)  # follow creates what the crash left out
    assert done.hosts["win1"].status == "applied" and len(rig.graph.deployments) == 1
    rig.graph.entries.clear()  # the catalog entry is gone: Graph refuses the deployment
    other = await backend.find("pg-1-r2-b1-intune-apply", {})
    assert other is not None
    refused = await backend.follow(other, {}, wait=5)
    assert refused.done and refused.hosts["win2"].failed_task == "deployment"
    assert "refused to create its deployment: " in refused.hosts["win2"].output
    assert "400: BadRequest" in refused.hosts["win2"].output


async def test_a_faulted_deployment_or_a_slow_device_fails_with_the_reason(rig: GraphRig) -> None:
    rig.graph.steps = 50  # the devices take long
    backend = IntuneBackend(rig.client(), rig.journal, poll_interval=0.01, sleep=no_sleep)
    job = await backend.submit(work("pg-1-r2-b0-intune-apply", ["win1"]))
    assert not (await backend.follow(job, {}, wait=0)).done
    timed = await backend.follow(job, {"install_timeout": 0.001}, wait=0)
    assert timed.hosts["win1"].failed_task == "install"
    assert "not installed after 0.001s" in timed.hosts["win1"].output
    other = await backend.submit(work("pg-1-r2-b1-intune-apply", ["win2"]))
    dep = rig.graph.deployments[other.job_id]
    dep.effective, dep.reasons = "faulted", ["faultedByContentOutdated"]
    faulted = await backend.follow(other, {}, wait=0)
    assert faulted.done and faulted.hosts["win2"].failed_task == "deployment"
    assert "is faulted (faultedByContentOutdated)" in faulted.hosts["win2"].output


async def test_after_a_crash_find_returns_the_deployment_and_nothing_is_created_twice(
    rig: GraphRig,
) -> None:
    batch = work("pg-1-r2-b5-intune-apply", ["win1"])
    job = await rig.backend().submit(batch)
    fresh = rig.backend()  # a new process: only the journal survives
    assert await fresh.find("pg-1-r2-b9-intune-apply", {}) is None
    found = await fresh.find(batch.key, {})
    assert found == job
    await fresh.submit(batch)
    assert len(deploy_posts(rig.graph)) == 1
    assert (await fresh.follow(found, {}, wait=5)).hosts["win1"].status == "applied"


async def test_a_lost_creation_answer_is_found_among_the_deployments(rig: GraphRig) -> None:
    backend = rig.backend()
    first = await backend.submit(work("pg-1-r2-b5-intune-apply", ["win2"]))  # just before
    rig.graph.lose_post_answers(1)
    job = await backend.submit(work("pg-1-r2-b6-intune-apply", ["win1"]))
    assert len(rig.graph.deployments) == 2 and len(deploy_posts(rig.graph)) == 2
    dep = rig.graph.deployments[job.job_id]  # not the other batch's (it has members)
    assert job.job_id != first.job_id
    assert rig.graph.audiences[dep.audience_id] == {rig.graph.by_name("win1").aad_id}


async def test_what_the_service_cannot_do_is_refused_before_anything_is_created(
    rig: GraphRig,
) -> None:
    next(iter(rig.graph.entries.values())).expeditable = False
    rig.graph.entries[list(rig.graph.entries)[1]].expeditable = False
    backend = rig.backend()
    with pytest.raises(IntuneRejected, match="cannot be expedited"):
        await backend.submit(work("pg-1-r2-b7-intune-apply", ["win1"], {"expedite": True}))
    with pytest.raises(IntuneRejected, match="no Intune Windows device is named ghost"):
        await backend.submit(work("pg-1-r2-b8-intune-apply", ["ghost"]))
    bad = BatchWork(
        "pg-1-r2-b9-intune-apply",
        "apply",
        7,
        "prod",
        0,
        [InventoryHost(name="win1")],
        {"win1": {KB: "10.0.22631.9999"}},
    )
    with pytest.raises(IntuneRejected, match=r"brings win1 \(build 10.0.22631.4460\) to"):
        await backend.submit(bad)
    with pytest.raises(IntuneRejected, match="cannot rollback"):
        await backend.submit(BatchWork("k-rollback", "rollback", 7, "prod", 0, [], {}))
    assert deploy_posts(rig.graph) == []


async def test_a_changed_response_shape_is_an_error_on_the_host_not_a_crash(rig: GraphRig) -> None:
    backend = rig.backend()
    job = await backend.submit(work("pg-1-r2-b0-intune-apply", ["win1"]))
    original = rig.graph._managed
    rig.graph._managed = lambda dev: {"id": dev.id, "deviceName": 42}  # type: ignore[method-assign]
    try:
        status = await backend.follow(job, {}, wait=5)
    finally:
        rig.graph._managed = original  # type: ignore[method-assign]
    assert status.done and status.hosts["win1"].status == "failed"
    assert "'deviceName' is 42, not the documented type" in status.hosts["win1"].output
