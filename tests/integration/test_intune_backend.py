"""Contract tests of the ``intune`` backend: the real Graph client over HTTP against the
Microsoft Graph emulator (tests/fakes/intune_graph_api.py): inventory, assessment from
the quality-update catalog, deployments followed to per-device results, halt, status,
paging, throttling, token refresh, error bodies, a lost answer, a crash."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.intune import (
    GraphClient,
    IntuneAuthError,
    IntuneBackend,
    IntuneError,
    IntuneNotFound,
    IntuneRejected,
    IntuneUnavailable,
)
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from workflows.backends import HOST_BACKEND_VAR, BatchWork
from workflows.ports import InventoryHost

KB, BUILD = "KB5046633", "10.0.22631.4541"
KB10, BUILD10 = "KB5046613", "10.0.19045.5131"


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[IntuneGraphEmulator]:
    emulator = IntuneGraphEmulator(steps=2)
    await emulator.start()
    for name in ("win1", "win2", "win3"):
        emulator.add_device(name, "10.0.22631.4460")
    emulator.add_device("win10", "10.0.19045.5073")
    emulator.add_device("kiosk", "10.0.22631.4460", aad_id="")
    emulator.add_device("mac1", "14.6", operating_system="macOS")
    emulator.add_entry("2026.10 B", {"10.0.22631.4391": "KB5044285"}, cves=["CVE-2026-1"])
    emulator.add_entry(
        "2026.11 B",
        {BUILD: KB, BUILD10: KB10},
        severity="important",
        cves=["CVE-2026-43451", "CVE-2026-49039"],
    )
    try:
        yield emulator
    finally:
        await emulator.stop()


class Rig:
    def __init__(self, graph: IntuneGraphEmulator, journal: Path) -> None:
        self.graph = graph
        self.journal = journal
        self.clients: list[GraphClient] = []

    def client(self, *, secret: str | None = None, **kw: Any) -> GraphClient:
        kw.setdefault("max_attempts", 3)
        kw.setdefault("sleep", _no_sleep)
        client = GraphClient(
            self.graph.tenant,
            self.graph.client_id,
            SecretStr(secret or self.graph.client_secret),
            graph_url=self.graph.url,
            login_url=self.graph.url,
            **kw,
        )
        self.clients.append(client)
        return client

    def backend(self, **kw: Any) -> IntuneBackend:
        return IntuneBackend(self.client(**kw), self.journal, poll_interval=0.01, sleep=_no_sleep)


async def _no_sleep(_: float) -> None:
    return None


@pytest_asyncio.fixture
async def rig(graph: IntuneGraphEmulator, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(graph, tmp_path / "journal")
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def _work(key: str, hosts: list[str], options: dict[str, Any] | None = None) -> BatchWork:
    return BatchWork(
        key=key,
        action="apply",
        rollout_id=7,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions={h: ({KB10: BUILD10} if h == "win10" else {KB: BUILD}) for h in hosts},
        options=options or {},
    )


def _deploy_posts(graph: IntuneGraphEmulator) -> list[dict[str, Any]]:
    return [b for p, b in graph.posts if p.endswith("/updates/deployments")]


async def test_windows_devices_become_inventory_hosts_across_pages(rig: Rig) -> None:
    rig.graph.page_size = 2
    hosts = {h.name: h for h in await rig.backend().hosts({})}
    assert sorted(hosts) == ["kiosk", "win1", "win10", "win2", "win3"]  # not the Mac
    win1 = hosts["win1"]
    assert win1.vars[HOST_BACKEND_VAR] == "intune" and win1.vars["patchgate_os_family"] == "windows"
    assert win1.vars["intune_os_version"] == win1.vars["patchgate_os_build"] == "10.0.22631.4460"
    assert win1.vars["intune_azure_ad_device_id"] == rig.graph.by_name("win1").aad_id
    assert "no Microsoft Entra device id" in hosts["kiosk"].vars["patchgate_unreachable"]
    assert "patchgate_unreachable" not in win1.vars
    listed = [p for m, p in rig.graph.requests if p.endswith("/managedDevices")]
    assert len(listed) == 3  # three pages through @odata.nextLink


async def test_the_newest_applicable_quality_update_is_pending_with_severity_and_cves(
    rig: Rig,
) -> None:
    hosts = [InventoryHost(name=n) for n in ("win1", "win10", "kiosk", "ghost")]
    found = {a.host: a for a in await rig.backend().assess(hosts, {})}
    (upg,) = found["win1"].upgradable
    assert (upg.name, upg.current, upg.candidate, upg.security) == (
        KB,
        "10.0.22631.4460",
        BUILD,
        True,
    )
    (adv,) = found["win1"].advisories
    assert adv.id == "intune:2026.11 B" and adv.severity == "high"  # Microsoft's "important"
    assert adv.cves == ("CVE-2026-43451", "CVE-2026-49039") and adv.packages == {KB: BUILD}
    assert [u.name for u in found["win10"].upgradable] == [KB10]
    assert found["kiosk"].error == "no Microsoft Entra device id"
    assert found["ghost"].error == "not an Intune Windows device" and not found["ghost"].reachable


async def test_a_batch_is_one_deployment_of_the_catalog_entry_followed_to_applied(
    rig: Rig,
) -> None:
    backend = rig.backend()
    opts = {"days_until_forced_reboot": 2, "expedite": True}
    job = await backend.submit(_work("pg-1-r2-b0-intune-apply", ["win1", "win2"], opts))
    (dep,) = rig.graph.deployments.values()
    assert job.job_id == dep.id and dep.entry.short_name == "2026.11 B"
    (body,) = _deploy_posts(rig.graph)
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


async def test_devices_on_two_builds_share_the_entry_and_one_deployment(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b1-intune-apply", ["win1", "win10"]))
    assert len(rig.graph.deployments) == 1
    status = await backend.follow(job, {}, wait=5)
    assert status.hosts["win10"].after == {KB10: BUILD10}


async def test_a_failed_update_is_the_devices_failure_and_the_monitoring_rule_pauses(
    rig: Rig,
) -> None:
    rig.graph.by_name("win2").fail = "0x800f0922"
    opts = {
        "update_ring_id": rig.graph.ring_id,
        "monitoring": {"signal": "rollback", "threshold": 40, "action": "pauseDeployment"},
    }
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b2-intune-apply", ["win1", "win2"], opts))
    rule = _deploy_posts(rig.graph)[0]["settings"]["monitoring"]["monitoringRules"][0]
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


async def test_an_asset_the_service_cannot_update_fails_with_its_error(rig: Rig) -> None:
    rig.graph.by_name("win3").asset_error = "invalidAzureADJoin"
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b3-intune-apply", ["win3"]))
    status = await backend.follow(job, {}, wait=5)
    assert status.hosts["win3"].failed_task == "enrollment"
    assert "has errors: invalidAzureADJoin" in status.hosts["win3"].output


async def test_halt_pauses_the_deployment_once_and_the_devices_left_are_skipped(
    rig: Rig,
) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b4-intune-apply", ["win1", "win2"]))
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


async def test_a_halt_before_the_deployment_exists_means_it_is_never_created(rig: Rig) -> None:
    rig.graph.fail_next(503, path="/updates/deployments")  # not retried: a POST
    backend = rig.backend()
    work = _work("pg-1-r2-b0-intune-apply", ["win1"])
    with pytest.raises(IntuneUnavailable, match="503"):
        await backend.submit(work)
    job = await backend.find(work.key, {})
    assert job is not None and job.job_id == "?"  # the intent, no deployment yet
    await backend.halt(job, {}, reason="budget spent")
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.hosts["win1"].status == "skipped"
    tried = [p for m, p in rig.graph.requests if m == "POST" and p.endswith("/deployments")]
    assert rig.graph.deployments == {} and len(tried) == 1  # the refused try, never again


async def test_a_resumed_job_creates_its_deployment_or_fails_its_devices_with_why(
    rig: Rig,
) -> None:
    rig.graph.fail_next(503, path="/updates/deployments")
    backend = rig.backend()
    with pytest.raises(IntuneUnavailable):
        await backend.submit(_work("pg-1-r2-b0-intune-apply", ["win1"]))
    with pytest.raises(IntuneUnavailable):
        rig.graph.fail_next(503, path="/updates/deployments")
        await backend.submit(_work("pg-1-r2-b1-intune-apply", ["win2"]))
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


async def test_a_faulted_deployment_or_a_slow_device_fails_with_the_reason(rig: Rig) -> None:
    rig.graph.steps = 50  # the devices take long
    backend = IntuneBackend(rig.client(), rig.journal, poll_interval=0.01, sleep=_no_sleep)
    job = await backend.submit(_work("pg-1-r2-b0-intune-apply", ["win1"]))
    assert not (await backend.follow(job, {}, wait=0)).done
    timed = await backend.follow(job, {"install_timeout": 0.001}, wait=0)
    assert timed.hosts["win1"].failed_task == "install"
    assert "not installed after 0.001s" in timed.hosts["win1"].output
    other = await backend.submit(_work("pg-1-r2-b1-intune-apply", ["win2"]))
    dep = rig.graph.deployments[other.job_id]
    dep.effective, dep.reasons = "faulted", ["faultedByContentOutdated"]
    faulted = await backend.follow(other, {}, wait=0)
    assert faulted.done and faulted.hosts["win2"].failed_task == "deployment"
    assert "is faulted (faultedByContentOutdated)" in faulted.hosts["win2"].output


async def test_assessment_of_all_quality_updates_includes_non_security_ones(rig: Rig) -> None:
    rig.graph.add_entry(
        "2026.11 D",
        {"10.0.22631.4602": "KB5046732"},
        classification="nonSecurity",
        severity=None,
        expeditable=False,
    )
    host = [InventoryHost(name="win1")]
    (security,) = await rig.backend().assess(host, {})
    assert [u.name for u in security.upgradable] == [KB]  # the security one only
    (every,) = await rig.backend().assess(host, {"classification": "all"})
    (upg,) = every.upgradable
    assert (upg.name, upg.candidate, upg.security) == ("KB5046732", "10.0.22631.4602", False)
    assert every.advisories[0].severity is None


async def test_a_hostile_id_from_graph_never_reaches_a_url(rig: Rig) -> None:
    rig.graph.add_device("evil", aad_id="../../users/x")
    with pytest.raises(IntuneError, match=r"'\.\./\.\./users/x' is not a usable id"):
        await rig.backend().submit(_work("pg-1-r2-b1-intune-apply", ["evil"]))
    assert not any("users" in p for _, p in rig.graph.requests)
    (evil,) = [h for h in await rig.backend().hosts({}) if h.name == "evil"]
    assert "is not a usable id" in evil.vars["patchgate_unreachable"]  # a gap, not a crash


async def test_after_a_crash_find_returns_the_deployment_and_nothing_is_created_twice(
    rig: Rig,
) -> None:
    work = _work("pg-1-r2-b5-intune-apply", ["win1"])
    job = await rig.backend().submit(work)
    fresh = rig.backend()  # a new process: only the journal survives
    assert await fresh.find("pg-1-r2-b9-intune-apply", {}) is None
    found = await fresh.find(work.key, {})
    assert found == job
    await fresh.submit(work)
    assert len(_deploy_posts(rig.graph)) == 1
    assert (await fresh.follow(found, {}, wait=5)).hosts["win1"].status == "applied"


async def test_a_lost_creation_answer_is_found_among_the_deployments(rig: Rig) -> None:
    rig.graph.lose_post_answers(1)
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b6-intune-apply", ["win1"]))
    (dep,) = rig.graph.deployments.values()
    assert job.job_id == dep.id and len(_deploy_posts(rig.graph)) == 1
    assert rig.graph.audiences[dep.audience_id] == {rig.graph.by_name("win1").aad_id}


async def test_what_the_service_cannot_do_is_refused_before_anything_is_created(
    rig: Rig,
) -> None:
    next(iter(rig.graph.entries.values())).expeditable = False
    rig.graph.entries[list(rig.graph.entries)[1]].expeditable = False
    backend = rig.backend()
    with pytest.raises(IntuneRejected, match="cannot be expedited"):
        await backend.submit(_work("pg-1-r2-b7-intune-apply", ["win1"], {"expedite": True}))
    with pytest.raises(IntuneRejected, match="no Intune Windows device is named ghost"):
        await backend.submit(_work("pg-1-r2-b8-intune-apply", ["ghost"]))
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
    assert _deploy_posts(rig.graph) == []


async def test_throttling_is_waited_out_as_retry_after_says(rig: Rig) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    rig.graph.fail_next(429, times=2, retry_after=3)
    assert len(await rig.backend(sleep=sleep).hosts({})) == 5
    assert waits == [3.0, 3.0]
    rig.graph.fail_next(429, times=1, retry_after=600)  # longer than a call may wait
    with pytest.raises(IntuneUnavailable, match="429: TooManyRequests"):
        await rig.backend(sleep=sleep).hosts({})
    # enrolling and adding members may be repeated: throttled, they are retried too
    rig.graph.fail_next(429, retry_after=2, path="/enrollAssets")
    rig.graph.fail_next(429, retry_after=4, path="/updateAudience")
    await rig.backend(sleep=sleep).submit(_work("pg-1-r2-b0-intune-apply", ["win1"]))
    assert waits[-2:] == [2.0, 4.0] and len(rig.graph.deployments) == 1


async def test_an_expired_token_is_fetched_again_once_and_a_bad_secret_is_an_auth_error(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = rig.backend()
    await backend.hosts({})
    rig.graph.expire_tokens()
    assert len(await backend.hosts({})) == 5
    assert rig.clients[-1].tokens_fetched == 2
    with pytest.raises(IntuneAuthError, match="invalid_client: AADSTS7000215") as err:
        await rig.backend(secret="wrong-secret-42").hosts({})
    assert "contoso-tenant/oauth2/v2.0/token" in str(err.value)
    assert "check the client id and secret" in str(err.value)
    assert "wrong-secret-42" not in caplog.text + str(err.value)
    assert rig.graph.client_secret not in caplog.text
    assert not any(t in caplog.text for t in rig.graph.tokens)


async def test_graph_error_bodies_are_translated_with_their_code_and_request_id(
    rig: Rig,
) -> None:
    client = rig.client()
    with pytest.raises(IntuneNotFound, match=r"404: ResourceNotFound: .*\(request-id ") as err:
        await client.get("beta/admin/windows/updates/deployments/nope")
    assert err.value.code == "ResourceNotFound"
    with pytest.raises(IntuneRejected, match="400: BadRequest: content must be"):
        await client.post("beta/admin/windows/updates/deployments", {"content": {}})


async def test_status_is_the_devices_check_in_and_windows_update_state(rig: Rig) -> None:
    rig.graph.by_name("win2").last_sync = "2026-01-01T00:00:00Z"
    rig.graph.by_name("win3").ring_status = "pendingReboot"
    rig.graph.by_name("win1").ring_status = "upToDate"
    backend = IntuneBackend(rig.client(), rig.journal, clock=lambda: 1796630400.0)  # 2026-12-07
    hosts = [InventoryHost(name=n) for n in ("win1", "win2", "win3", "ghost")]
    found = {s.host: s for s in await backend.status(hosts, {"update_ring_id": rig.graph.ring_id})}
    assert found["win1"].ok and found["win1"].state == "upToDate"
    assert not found["win2"].ok and "last checked in at 2026-01-01" in found["win2"].detail
    assert not found["win3"].ok and found["win3"].state == "pendingReboot"
    assert not found["ghost"].ok and found["ghost"].state == "unknown"


async def test_a_changed_response_shape_is_an_error_on_the_host_not_a_crash(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b0-intune-apply", ["win1"]))
    original = rig.graph._managed
    rig.graph._managed = lambda dev: {"id": dev.id, "deviceName": 42}  # type: ignore[method-assign]
    try:
        status = await backend.follow(job, {}, wait=5)
    finally:
        rig.graph._managed = original  # type: ignore[method-assign]
    assert status.done and status.hosts["win1"].status == "failed"
    assert "'deviceName' is 42, not the documented type" in status.hosts["win1"].output


def test_plan_options_are_checked_without_io() -> None:
    from integrations.backends.intune.options import capabilities, check_options

    good = {
        "expedite": True,
        "monitoring": {"signal": "rollback", "threshold": 5, "action": "pauseDeployment"},
    }
    assert check_options(good) == []
    problems = check_options({"expedit": 1, "monitoring": {"signal": "x", "threshold": 0}})
    assert any("unknown option(s) expedit" in p for p in problems)
    assert any("monitoring.signal" in p for p in problems)
    assert any("monitoring.threshold: 1 to 100" in p for p in problems)
    caps = capabilities({})
    assert caps.status and caps.halt and caps.assess and not caps.rollback and caps.reboots_itself


async def test_the_cli_imports_the_intune_devices_from_its_settings(
    graph: IntuneGraphEmulator, tmp_path: Path
) -> None:
    """`patchgate inventory show` as a real process: PATCHGATE_INTUNE_* build the working
    backend (bot.backends), `backend:intune` imports its devices, the gap is shown."""
    from tests.integration.test_backend_inventory import patchgate

    env = {
        "PATCHGATE_INVENTORY": "backend:intune",
        "PATCHGATE_INTUNE_TENANT_ID": graph.tenant,
        "PATCHGATE_INTUNE_CLIENT_ID": graph.client_id,
        "PATCHGATE_INTUNE_CLIENT_SECRET": graph.client_secret,
        "PATCHGATE_INTUNE_GRAPH_URL": graph.url,
        "PATCHGATE_INTUNE_LOGIN_URL": graph.url,
    }
    code, out, err = await patchgate("inventory", "show", "--json", cwd=tmp_path, **env)
    assert code == 0, err
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    assert sorted(hosts) == ["kiosk", "win1", "win10", "win2", "win3"]
    assert hosts["win1"]["source"] == "backend:intune"
    assert hosts["win1"]["vars"]["intune_os_version"] == "10.0.22631.4460"
    assert graph.client_secret not in out + err
    assert not any(t in out + err for t in graph.tokens)
