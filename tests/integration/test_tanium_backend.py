"""Contract tests of the ``tanium`` backend: the real client over HTTP against the Tanium
emulator (tests/fakes/tanium_api.py): Gateway inventory with cursor paging, the Patch
applicability sensor, one Patch deployment per endpoint followed through the deployment
results sensor, errors, rate limits, a lost answer, a crash, what Tanium cannot do."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.tanium import (
    TaniumAuthError,
    TaniumBackend,
    TaniumClient,
    TaniumQueryError,
    TaniumRejected,
    TaniumUnavailable,
)
from integrations.backends.tanium.gateway import ENDPOINTS
from integrations.inventory.backend_source import ToolInventory, parse_entry, tool_gaps
from tests.fakes.tanium_api import DEPLOYMENTS, TaniumEmulator
from workflows.backends import HOST_BACKEND_VAR, BatchWork, JobRef
from workflows.ports import InventoryHost

CU = ("2026-11 Cumulative Update for Windows Server 2022 (KB5046617)", "Security Updates")
NET = ("2026-11 .NET Framework 4.8.1 Update (KB5046540)", "Updates")
MISSING = {"a1b2-cu": CU, "c3d4-net": NET}
PINNED = {"a1b2-cu": CU[0], "c3d4-net": NET[0]}


@pytest_asyncio.fixture
async def tan() -> AsyncIterator[TaniumEmulator]:
    emulator = TaniumEmulator(steps=2)
    await emulator.start()
    for name in ("win1", "win2", "win3"):
        emulator.add_endpoint(name, missing=MISSING)
    emulator.add_endpoint(
        "mac9", platform="Mac", os_name="macOS 14.6", online=False, seen_ago=9 * 86400
    )
    try:
        yield emulator
    finally:
        await emulator.stop()


class Rig:
    def __init__(self, tan: TaniumEmulator, journal: Path) -> None:
        self.tan = tan
        self.journal = journal
        self.clients: list[TaniumClient] = []
        self.waits: list[float] = []
        self.now = time.time()  # the emulator stamps last-seen times with real ones

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def client(self, token: str | None = None) -> TaniumClient:
        client = TaniumClient(
            self.tan.url, SecretStr(token or self.tan.token), max_attempts=3, sleep=self.sleep
        )
        self.clients.append(client)
        return client

    def backend(self, *, token: str | None = None, page_size: int = 100) -> TaniumBackend:
        return TaniumBackend(
            self.client(token),
            self.journal,
            poll_interval=0.01,
            page_size=page_size,
            sleep=self.sleep,
            clock=lambda: self.now,
        )


@pytest_asyncio.fixture
async def rig(tan: TaniumEmulator, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tan, tmp_path / "journal")
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def _work(key: str, hosts: list[str], action: str = "apply", **options: Any) -> BatchWork:
    return BatchWork(
        key=key,
        action=action,  # type: ignore[arg-type]
        rollout_id=7,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions={h: dict(PINNED) for h in hosts} if action == "apply" else {},
        options=options,
    )


def _posts(tan: TaniumEmulator) -> list[tuple[str, str]]:
    return [r for r in tan.requests if r == ("POST", DEPLOYMENTS)]


async def test_endpoints_become_inventory_hosts_across_cursor_pages(rig: Rig) -> None:
    backend = rig.backend(page_size=2)
    hosts = {h.name: h for h in await backend.hosts({})}
    assert sorted(hosts) == ["mac9", "win1", "win2", "win3"]
    win1 = hosts["win1"]
    assert win1.groups == frozenset({"tanium", "tanium-windows"})
    assert win1.vars[HOST_BACKEND_VAR] == "tanium"
    assert win1.vars["tanium_id"] == rig.tan.by_name("win1").id
    assert win1.vars["tanium_os_name"] == "Windows Server 2022 Datacenter"
    assert "patchgate_unreachable" not in win1.vars
    # an endpoint not seen for more than stale_after is a coverage gap
    assert "was last seen" in hosts["mac9"].vars["patchgate_unreachable"]
    afters = [q.get("after") for q in rig.tan.queries]
    assert afters[0] is None and len(afters) == 2 and afters[1]  # the endCursor followed


async def test_an_unknown_or_expired_cursor_is_a_graphql_error_not_data(rig: Rig) -> None:
    client = rig.client()
    with pytest.raises(TaniumQueryError, match="Invalid or expired cursor"):
        await client.graphql(ENDPOINTS, {"first": 10, "after": "c99x1"})
    first = await client.graphql(ENDPOINTS, {"first": 2, "after": None})
    cursor = first["endpoints"]["pageInfo"]["endCursor"]
    assert (await client.graphql(ENDPOINTS, {"first": 2, "after": cursor}))["endpoints"]["edges"]
    now = time.monotonic()
    rig.tan.clock = lambda: now + 301  # "cursors persist for five minutes after last use"
    with pytest.raises(TaniumQueryError, match="Invalid or expired cursor"):
        await client.graphql(ENDPOINTS, {"first": 2, "after": cursor})
    rig.tan.graphql_error_next("Sensor not found: Patch - Patch List Applicability")
    with pytest.raises(TaniumQueryError, match="Sensor not found") as info:
        await rig.backend().assess([InventoryHost(name="win1")], {})
    assert info.value.messages == (
        "Sensor not found: Patch - Patch List Applicability (at endpoints)",
    )


async def test_missing_patches_become_upgradable_and_offline_endpoints_a_gap(rig: Rig) -> None:
    hosts = [InventoryHost(name=n) for n in ("win1", "mac9", "nope")]
    found = {a.host: a for a in await rig.backend().assess(hosts, {"stable_wait": 10})}
    win1 = found["win1"]
    assert win1.reachable and win1.error is None
    upg = {u.name: (u.current, u.candidate, u.security) for u in win1.upgradable}
    assert upg == {"a1b2-cu": (None, CU[0], True), "c3d4-net": (None, NET[0], False)}
    assert [a.id for a in win1.advisories] == ["tanium:a1b2-cu"]
    # offline and not seen for 9 days: the reason is its last-seen time
    assert not found["mac9"].reachable and "was last seen" in (found["mac9"].error or "")
    assert found["nope"].error == "not a Tanium endpoint"
    rig.tan.by_name("win3").online = False  # seen a minute ago, but not answering now
    (win3,) = await rig.backend().assess([InventoryHost(name="win3")], {})
    assert not win3.reachable and "gave no live answer" in (win3.error or "")
    rig.tan.unfinished_next()  # collectionInfo.success false: the question did not complete
    (win1,) = await rig.backend().assess([InventoryHost(name="win1")], {})
    assert not win1.reachable and "the live question did not finish" in (win1.error or "")
    assert rig.tan.queries[0]["source"] == {"ts": {"stableWaitTime": 10}}


async def test_a_batch_is_one_patch_deployment_per_endpoint_followed_to_success(
    rig: Rig,
) -> None:
    backend = rig.backend()
    ref = await backend.submit(_work("pg-7-r2-b0-tanium-apply", ["win1", "win2"], restart=True))
    assert ref.job_id == "pg-7-r2-b0-tanium-apply"
    bodies = sorted(rig.tan.deployments.values(), key=lambda d: d["name"])
    assert [d["name"] for d in bodies] == [
        "pg-7-r2-b0-tanium-apply win1",
        "pg-7-r2-b0-tanium-apply win2",
    ]
    first = bodies[0]
    assert first["patchTaniumUids"] == ["a1b2-cu", "c3d4-net"] and first["type"] == "install"
    assert first["osType"] == "windows" and first["restart"] is True
    assert first["contentSetId"] == 42 and first["targetLimitingGroupIds"] == [1]
    target = rig.tan.groups[first["targetedQuestionGroupIds"][0]]
    assert target["text"] == 'Computer Name equals "win1"'
    early = await backend.follow(ref, {}, wait=0)
    assert not early.done and early.state == "deploying"  # no result rows yet
    status = await backend.follow(ref, {}, wait=5)
    assert status.done and status.state == "successful"
    for name in ("win1", "win2"):
        outcome = status.hosts[name]
        assert outcome.status == "applied" and outcome.after == PINNED
        assert "Succeeded" in outcome.output
        assert all(p.installed for p in rig.tan.by_name(name).patches.values())
    assert not any(p.installed for p in rig.tan.by_name("win3").patches.values())


async def test_a_failed_endpoint_is_failed_with_the_patch_it_failed(rig: Rig) -> None:
    rig.tan.fail_endpoint("win2", "0x80240022")
    backend = rig.backend()
    ref = await backend.submit(_work("pg-7-r2-b1-tanium-apply", ["win1", "win2"]))
    status = await backend.follow(ref, {}, wait=5)
    assert status.done and status.state == "failed"
    assert status.hosts["win1"].status == "applied"
    win2 = status.hosts["win2"]
    assert win2.status == "failed" and win2.failed_task == sorted(PINNED.values())[0]
    deployment = next(d["id"] for d in rig.tan.deployments.values() if d["name"].endswith("win2"))
    assert f"deployment {deployment}" in win2.output and "Failed" in win2.output


async def test_an_endpoint_without_results_is_unreachable_after_the_timeout(rig: Rig) -> None:
    rig.tan.add_endpoint("win4", missing=MISSING).online = False
    backend = rig.backend()
    ref = await backend.submit(_work("pg-7-r2-b2-tanium-apply", ["win1", "win4"]))
    status = await backend.follow(ref, {"result_timeout": 600}, wait=0.05)
    assert not status.done  # win4 has no result yet, and its time is not up
    rig.now += 601
    status = await backend.follow(ref, {"result_timeout": 600}, wait=5)
    assert status.done and status.hosts["win1"].status == "applied"
    assert status.hosts["win4"].status == "unreachable"
    assert "no final result" in status.hosts["win4"].output


async def test_after_a_crash_the_job_is_found_and_never_deployed_twice(rig: Rig) -> None:
    work = _work("pg-7-r2-b3-tanium-apply", ["win1", "win2"])
    await rig.backend().submit(work)
    assert len(_posts(rig.tan)) == 2
    again = rig.backend()  # a new process: only the journal remains
    assert await again.find(work.key, {}) is not None
    assert await again.find("pg-7-r2-b9-tanium-apply", {}) is None
    await again.submit(work)
    assert len(_posts(rig.tan)) == 2
    status = await again.follow(await again.find(work.key, {}) or _never(), {}, wait=5)
    assert status.done and {o.status for o in status.hosts.values()} == {"applied"}


def _never() -> Any:
    raise AssertionError("no job found")


async def test_a_lost_deployment_answer_is_never_sent_again_and_says_where_to_look(
    rig: Rig,
) -> None:
    rig.tan.lose_deployment_answers(1)
    backend = rig.backend()
    ref = await backend.submit(_work("pg-7-r2-b4-tanium-apply", ["win1", "win2"]))
    assert len(_posts(rig.tan)) == 2  # the lost one was not retried
    await backend.submit(_work("pg-7-r2-b4-tanium-apply", ["win1", "win2"]))
    assert len(_posts(rig.tan)) == 2
    status = await backend.follow(ref, {}, wait=5)
    lost = status.hosts["win1"]
    assert lost.status == "failed" and "answer was lost" in lost.output
    assert "'pg-7-r2-b4-tanium-apply win1'" in lost.output
    assert status.hosts["win2"].status == "applied"


async def test_429_is_waited_out_for_queries_and_for_a_refused_deployment(rig: Rig) -> None:
    backend = rig.backend()
    rig.tan.fail_next(429, retry_after=7)
    assert len(await backend.hosts({})) == 4
    assert rig.waits == [7.0]
    rig.tan.fail_next(503, times=2)
    assert len(await backend.hosts({})) == 4  # a query is retried on 503
    # a deployment POST refused with 429 was not performed: it is sent again, once
    rig.tan.fail_deployment_next(429, retry_after=3)
    ref = await backend.submit(_work("pg-7-r2-b5-tanium-apply", ["win1"]))
    assert len(_posts(rig.tan)) == 2 and len(rig.tan.deployments) == 1
    assert rig.waits[-1] == 3.0
    status = await backend.follow(ref, {}, wait=5)
    assert status.hosts["win1"].status == "applied"


async def test_a_5xx_on_the_deployment_post_is_not_retried(rig: Rig) -> None:
    backend = rig.backend()
    rig.tan.fail_deployment_next(503)
    ref = await backend.submit(_work("pg-7-r2-b6-tanium-apply", ["win1"]))
    assert len(_posts(rig.tan)) == 1  # one attempt: as far as PatchGate knows, it may exist
    status = await backend.follow(ref, {}, wait=1)
    assert status.hosts["win1"].status == "failed"
    assert "answer was lost" in status.hosts["win1"].output


async def test_a_bad_token_is_an_auth_error_that_never_shows_the_token(
    rig: Rig, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TaniumAuthError) as info:
        await rig.backend(token="token-wrong-secret-value").hosts({})
    assert info.value.status == 401 and "PATCHGATE_TANIUM_TOKEN" in str(info.value)
    assert "wrong-secret-value" not in str(info.value) + caplog.text


async def test_what_tanium_does_not_document_is_declared_and_refused(rig: Rig) -> None:
    backend = rig.backend()
    caps = backend.capabilities({"restart": True})
    assert (caps.rollback, caps.reboot, caps.halt) == (False, False, False)
    assert caps.status and caps.assess and caps.inventory and caps.reboots_itself
    assert not backend.capabilities({}).reboots_itself
    for action in ("rollback", "reboot"):
        with pytest.raises(TaniumRejected, match=f"cannot {action} .*install deployments only"):
            await backend.submit(_work(f"pg-7-r2-b7-tanium-{action}", ["win1"], action=action))
    assert backend.check_options({"restart": "yes", "window": 0, "pause": 1}) == [
        "tanium: unknown option(s) pause (known: restart, override_maintenance_windows,"
        " override_blocklists, window, result_timeout, stale_after, stable_wait)",
        "tanium.window: seconds (a positive number), got 0",
        "tanium.restart: true or false, got 'yes'",
    ]
    with pytest.raises(TaniumRejected, match="no Tanium endpoint is named ghost"):
        await backend.submit(_work("pg-7-r2-b8-tanium-apply", ["win1", "ghost"]))
    with pytest.raises(TaniumRejected, match="unusable in a Tanium question"):
        await backend.submit(_work("pg-7-r2-b8-tanium-apply", ['x" or Computer Name']))
    assert not rig.tan.deployments


async def test_the_inventory_import_lists_endpoints_and_their_coverage_gaps(rig: Rig) -> None:
    inventory = ToolInventory(None, [parse_entry("backend:tanium")], {"tanium": rig.backend()})
    await inventory.load()
    hosts = {h.name: h for h in inventory.hosts()}
    assert sorted(hosts) == ["mac9", "win1", "win2", "win3"]
    assert hosts["win1"].vars["patchgate_source"] == "backend:tanium"
    assert list(tool_gaps(list(hosts.values()))) == ["mac9"]


async def test_status_is_the_endpoints_last_seen_time(rig: Rig) -> None:
    backend = rig.backend()
    hosts = [InventoryHost(name=n) for n in ("win1", "mac9", "ghost")]
    found = {s.host: s for s in await backend.status(hosts, {"stale_after": 3600})}
    assert found["win1"].ok and found["win1"].state.startswith("last seen 20")
    assert not found["mac9"].ok and "was last seen" in found["mac9"].detail
    assert not found["ghost"].ok and found["ghost"].detail == "not a Tanium endpoint"


async def test_a_transport_failure_of_a_query_is_unavailable_after_the_retries(
    rig: Rig,
) -> None:
    rig.tan.fail_next(502, times=3)
    with pytest.raises(TaniumUnavailable, match="502"):
        await rig.backend().hosts({})


async def test_a_gateway_error_while_following_waits_then_fails_the_hosts(rig: Rig) -> None:
    backend = rig.backend()
    ref = await backend.submit(_work("pg-7-r2-b10-tanium-apply", ["win1"]))
    rig.tan.graphql_error_next("The question did not complete")
    status = await backend.follow(ref, {"result_timeout": 600}, wait=0)
    assert not status.done  # asked again at the next poll
    rig.now += 601
    rig.tan.graphql_error_next("The question did not complete")
    status = await backend.follow(ref, {"result_timeout": 600}, wait=0)
    assert status.done and status.hosts["win1"].status == "failed"
    assert "The question did not complete" in status.hosts["win1"].output


async def test_a_deployment_tanium_refused_is_sent_again_by_a_later_submit(rig: Rig) -> None:
    work = _work("pg-7-r2-b11-tanium-apply", ["win1", "win2"])
    backend = rig.backend()
    first = len(rig.tan.deployments)
    rig.tan.fail_deployment_next(422)
    with pytest.raises(TaniumRejected, match="422"):
        await backend.submit(work)  # win1's deployment refused: nothing created
    assert len(rig.tan.deployments) == first
    await rig.backend().submit(work)  # after a restart: both are sent now, once each
    names = sorted(d["name"] for d in rig.tan.deployments.values())
    assert names == [f"{work.key} win1", f"{work.key} win2"]
    status = await backend.follow(ref_of(work), {}, wait=5)
    assert {o.status for o in status.hosts.values()} == {"applied"}


def ref_of(work: BatchWork) -> JobRef:
    return JobRef("tanium", work.key, work.key)
