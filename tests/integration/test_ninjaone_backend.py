"""Contract tests of the ``ninjaone`` backend: the real client over HTTP against the
NinjaOne public API v2 emulator (tests/fakes/ninjaone_api.py): OAuth2 tokens, inventory
with organisations and offline devices, assessment from pending OS patches, the apply of
exactly the pinned set and its per-device results, device status, errors, rate limits,
a lost answer and a crash."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.ninjaone import (
    NinjaOneAuthError,
    NinjaOneBackend,
    NinjaOneClient,
    NinjaOneError,
    NinjaOneNotFound,
    NinjaOneRejected,
    NinjaOneUnavailable,
)
from tests.fakes.ninjaone_api import FakePatch, NinjaOneEmulator
from workflows.backends import HOST_BACKEND_VAR, BatchWork
from workflows.ports import InventoryHost

CU = FakePatch("KB5034439", "2024-01 Cumulative Update for Windows Server 2022 (KB5034439)")
NET = FakePatch("5034612", ".NET Framework 4.8.1 security update", severity="MODERATE")
PINNED = {"KB5034439": "KB5034439", "KB5034612": "KB5034612"}


@pytest_asyncio.fixture
async def ninja() -> AsyncIterator[NinjaOneEmulator]:
    emulator = NinjaOneEmulator(steps=2)
    await emulator.start()
    acme = emulator.add_org("Acme Corp")
    lab = emulator.add_org("Lab")
    for name in ("WEB1", "WEB2", "WEB3"):
        emulator.add_device(name, acme, patches=[CU, NET])
    emulator.add_device(
        "SQL1",
        acme,
        patches=[
            CU,
            FakePatch("KB5034000", "Optional preview", severity="OPTIONAL", status="MANUAL"),
            FakePatch("KB5033999", "Rejected driver", type="DRIVER_UPDATES", status="REJECTED"),
        ],
    )
    emulator.add_device("LAPTOP9", lab, node_class="WINDOWS_WORKSTATION", offline=True)
    emulator.add_device("MAC1", lab, node_class="MAC", patches=[FakePatch(None, "Safari 17.6")])
    try:
        yield emulator
    finally:
        await emulator.stop()


class Rig:
    def __init__(self, ninja: NinjaOneEmulator, journal: Path) -> None:
        self.ninja = ninja
        self.journal = journal
        self.clients: list[NinjaOneClient] = []
        self.now = 0.0  # seconds added to the wall clock the backend sees

    def client(self, *, secret: str | None = None, **kw: Any) -> NinjaOneClient:
        kw.setdefault("max_attempts", 3)
        kw.setdefault("sleep", _no_sleep)
        client = NinjaOneClient(
            self.ninja.url, self.ninja.client_id, SecretStr(secret or self.ninja.secret), **kw
        )
        self.clients.append(client)
        return client

    def backend(self, **kw: Any) -> NinjaOneBackend:
        return NinjaOneBackend(
            self.client(**kw),
            self.journal,
            poll_interval=0.01,
            sleep=_no_sleep,
            clock=lambda: time.time() + self.now,
        )


async def _no_sleep(_: float) -> None:
    return None


@pytest_asyncio.fixture
async def rig(ninja: NinjaOneEmulator, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(ninja, tmp_path / "journal")
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def _work(key: str, hosts: list[str], pinned: dict[str, str] | None = None) -> BatchWork:
    return BatchWork(
        key=key,
        action="apply",
        rollout_id=7,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions={h: dict(PINNED if pinned is None else pinned) for h in hosts},
    )


def _paths(ninja: NinjaOneEmulator, path: str) -> list[dict[str, str]]:
    return [q for _, p, q in ninja.requests if p == path]


async def test_devices_become_hosts_grouped_by_organisation_offline_ones_flagged(rig: Rig) -> None:
    hosts = {h.name: h for h in await rig.backend(page_size=2).hosts({})}
    assert sorted(hosts) == ["LAPTOP9", "MAC1", "SQL1", "WEB1", "WEB2", "WEB3"]
    # paged by the last id; a full last page is followed by an empty one
    after = [q.get("after") for q in _paths(rig.ninja, "/v2/devices-detailed")]
    assert after == [None, "102", "104", "106"]
    web1 = hosts["WEB1"]
    assert web1.groups == frozenset({"ninjaone", "Acme Corp"})
    assert web1.address == "WEB1.corp.example" and web1.vars[HOST_BACKEND_VAR] == "ninjaone"
    assert web1.vars["ninjaone_id"] == rig.ninja.by_name("WEB1").id
    assert web1.vars["ninjaone_os_family"] == "windows" and "os:windows" in web1.tags
    assert hosts["MAC1"].vars["ninjaone_os_family"] == "macos"
    assert hosts["LAPTOP9"].groups == frozenset({"ninjaone", "Lab"})
    # a coverage gap when the inventory is imported (integrations.inventory.backend_source)
    assert (
        "LAPTOP9 (device 105) is offline, last contact"
        in (hosts["LAPTOP9"].vars["patchgate_unreachable"])
    )
    assert all("patchgate_unreachable" not in h.vars for n, h in hosts.items() if n != "LAPTOP9")
    only = await rig.backend().hosts({"device_filter": "class in (MAC)"})
    assert [h.name for h in only] == ["MAC1"]


async def test_approved_patches_are_upgradable_by_kb_with_severity(rig: Rig) -> None:
    names = ["WEB1", "SQL1", "LAPTOP9", "MAC1", "ghost"]
    found = await rig.backend(page_size=2).assess([InventoryHost(name=n) for n in names], {})
    got = {a.host: a for a in found}
    web1 = got["WEB1"]
    assert web1.reachable and web1.error is None
    assert {(u.name, u.candidate, u.security) for u in web1.upgradable} == {
        ("KB5034439", "KB5034439", True),
        ("KB5034612", "KB5034612", True),  # a SECURITY_UPDATES patch, whatever its severity
    }
    assert {a.id: a.severity for a in web1.advisories} == {
        "ninjaone:KB5034439": "high",  # NinjaOne's IMPORTANT
        "ninjaone:KB5034612": "medium",
    }
    # awaiting approval (MANUAL) or REJECTED: an apply would not install it, so not pinnable
    assert {u.name for u in got["SQL1"].upgradable} == {"KB5034439"}
    assert [u.name for u in got["MAC1"].upgradable] == ["Safari 17.6"]  # no KB: its name
    assert not got["LAPTOP9"].reachable and "offline" in (got["LAPTOP9"].error or "")
    assert got["ghost"].error == "not a NinjaOne device"
    pages = _paths(rig.ninja, "/v2/queries/os-patches")
    assert len(pages) > 1 and "cursor" in pages[1]  # followed the report's cursor
    assert pages[0]["df"] == "id in (101,104,106)"  # online devices only


async def test_a_batch_applies_on_each_device_and_follows_to_applied_then_scans(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b0-ninjaone-apply", ["WEB1", "web2"]))
    ids = [rig.ninja.by_name(n).id for n in ("WEB1", "WEB2")]
    assert rig.ninja.posts == [("apply", i) for i in ids]  # names match without case
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.state == "successful"
    assert status.hosts["web2"].status == "applied"
    assert dict(status.hosts["WEB1"].after) == PINNED
    assert rig.ninja.installed("WEB1") == set(PINNED)
    assert sorted(rig.ninja.posts[2:]) == sorted(("scan", i) for i in ids)
    query = _paths(rig.ninja, "/v2/queries/os-patch-installs")[0]
    assert query["df"] == f"id in ({ids[0]},{ids[1]})" and int(query["installedAfter"]) > 0


async def test_a_device_whose_approved_patches_differ_from_the_pinned_set_is_refused(
    rig: Rig,
) -> None:
    backend = rig.backend()
    with pytest.raises(NinjaOneRejected) as refused:
        await backend.submit(_work("pg-1-r2-b1-ninjaone-apply", ["WEB1", "SQL1"]))
    text = str(refused.value)
    assert "cannot be given a list" in text
    assert "SQL1: pinned but not approved in NinjaOne: KB5034612" in text
    with pytest.raises(NinjaOneRejected, match="approved in NinjaOne but not pinned: KB5034612"):
        await backend.submit(_work("pg-1-r2-b2-ninjaone-apply", ["WEB1"], {"KB5034439": "x"}))
    assert rig.ninja.posts == []  # nothing applied anywhere
    assert await backend.find("pg-1-r2-b1-ninjaone-apply", {}) is None


async def test_a_failed_install_is_reported_failed_with_the_patch(rig: Rig) -> None:
    rig.ninja.fail_device("WEB3", "Windows Update error 0x80240022")
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b3-ninjaone-apply", ["WEB1", "WEB3"]))
    status = await backend.follow(job, {}, wait=5)
    assert status.state == "failed" and status.hosts["WEB1"].status == "applied"
    web3 = status.hosts["WEB3"]
    assert web3.status == "failed" and web3.failed_task == "os patch install"
    assert "install FAILED for KB5034439" in web3.output and "0x80240022" in web3.output


async def test_an_offline_device_waits_then_counts_unreachable(rig: Rig) -> None:
    rig.ninja.by_name("WEB2").offline = True
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b4-ninjaone-apply", ["WEB2"]))
    assert not (await backend.follow(job, {}, wait=0)).done
    rig.now = 14401.0  # past apply_timeout
    status = await backend.follow(job, {}, wait=5)
    outcome = status.hosts["WEB2"]
    assert outcome.status == "unreachable"
    assert "no install record of KB5034439, KB5034612 after 14400s" in outcome.output
    assert "is offline" in outcome.output


async def test_an_unpinned_patch_installed_by_the_apply_fails_the_device(rig: Rig) -> None:
    rig.ninja.install_extra("WEB1", "KB5035000")  # approved after the check, say
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b5-ninjaone-apply", ["WEB1"]))
    outcome = (await backend.follow(job, {}, wait=5)).hosts["WEB1"]
    assert outcome.status == "failed" and outcome.failed_task == "unpinned patches installed"
    assert "also installed KB5035000" in outcome.output


async def test_after_a_crash_find_returns_the_job_and_an_unconfirmed_apply_is_posted_once_more(
    rig: Rig,
) -> None:
    work = _work("pg-1-r2-b6-ninjaone-apply", ["WEB1", "WEB2"])
    rig.ninja.lose_apply_answers(1)  # WEB1's apply is taken, its answer lost
    await rig.backend().submit(work)
    assert [p for p, _ in rig.ninja.posts] == ["apply", "apply"]  # a POST is not retried
    fresh = rig.backend()  # a new process: only the journal survives
    assert await fresh.find("pg-1-r2-b9-ninjaone-apply", {}) is None
    found = await fresh.find(work.key, {})
    assert found is not None and found.job_id == work.key
    await fresh.submit(work)  # the engine never does, but it would apply nothing again
    assert len(rig.ninja.posts) == 2
    status = await fresh.follow(found, {"scan_after": False}, wait=5)
    assert status.state == "successful"
    # the unconfirmed device's apply posted once more (it installs the approved set,
    # checked equal to the pinned one), the confirmed one's never
    web1, web2 = rig.ninja.by_name("WEB1").id, rig.ninja.by_name("WEB2").id
    assert rig.ninja.posts == [("apply", web1), ("apply", web2), ("apply", web1)]
    assert rig.ninja.installed("WEB1") == set(PINNED)


async def test_an_expired_token_is_fetched_again_once_and_bad_credentials_fail_cleanly(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = rig.backend()
    client = rig.clients[-1]
    await backend.hosts({})
    rig.ninja.expire_tokens()
    assert len(await backend.hosts({})) == 6
    assert client.token.fetched == 2
    with pytest.raises(NinjaOneAuthError, match="invalid_client"):
        await rig.backend(secret="wrong-secret").hosts({})
    assert rig.ninja.secret not in caplog.text and "wrong-secret" not in caplog.text
    assert not any(t in caplog.text for t in rig.ninja.tokens)


async def test_a_token_without_the_management_scope_fails_the_apply_with_the_reason(
    rig: Rig,
) -> None:
    backend = rig.backend(scope="monitoring")
    job = await backend.submit(_work("pg-1-r2-b7-ninjaone-apply", ["WEB1"]))
    outcome = (await backend.follow(job, {}, wait=5)).hosts["WEB1"]
    assert outcome.status == "failed" and "403" in outcome.output
    assert "PATCHGATE_NINJAONE_SCOPE" in outcome.output


async def test_rate_limits_are_waited_out_as_retry_after_says(rig: Rig) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    backend = NinjaOneBackend(rig.client(sleep=sleep), rig.journal, sleep=_no_sleep)
    rig.ninja.fail_next(429, times=2, retry_after=3)
    assert len(await backend.hosts({})) == 6 and waits == [3.0, 3.0]
    rig.ninja.fail_next(429, times=1, retry_after=600)  # longer than a call may wait
    with pytest.raises(NinjaOneUnavailable, match="429"):
        await backend.hosts({})


async def test_a_rate_limited_apply_is_posted_again_and_a_rate_limited_follow_waits(
    rig: Rig,
) -> None:
    backend = rig.backend(max_retry_wait=1)
    rig.ninja.fail_next(429, retry_after=0.5, method="POST")  # NinjaOne did not take it
    job = await backend.submit(_work("pg-1-r2-b8-ninjaone-apply", ["WEB1"]))
    assert rig.ninja.posts == []  # a POST is tried once by the client
    rig.ninja.fail_next(429, times=1, retry_after=60)  # longer than the client waits
    assert not (await backend.follow(job, {}, wait=0)).done  # pending, not failed
    done = await backend.follow(job, {}, wait=5)  # the apply posted again, then followed
    assert done.state == "successful"
    web1 = rig.ninja.by_name("WEB1").id
    assert [p for p in rig.ninja.posts if p[0] == "apply"] == [("apply", web1)]
    reads = len(rig.ninja.requests)
    again = await backend.follow(job, {}, wait=0)
    assert again.hosts == done.hosts and len(rig.ninja.requests) == reads  # kept
    rig.ninja.fail_next(503, times=50, method="POST")  # NinjaOne never takes WEB2's apply
    job = await backend.submit(_work("pg-1-r2-b12-ninjaone-apply", ["WEB2"]))
    assert not (await backend.follow(job, {}, wait=0)).done
    rig.now = 14401.0
    late = (await backend.follow(job, {}, wait=5)).hosts["WEB2"]
    assert late.status == "failed" and "never confirmed the OS patch apply" in late.output


async def test_errors_are_translated(rig: Rig) -> None:
    backend = rig.backend()
    with pytest.raises(NinjaOneNotFound, match="Device 999 not found"):
        await rig.clients[-1].get("v2/device/999")
    with pytest.raises(NinjaOneRejected, match="Invalid device filter"):
        await backend.hosts({"device_filter": "name = web1; drop"})
    with pytest.raises(NinjaOneRejected, match="no NinjaOne device is named ghost"):
        await backend.submit(_work("pg-1-r2-b9-ninjaone-apply", ["ghost"]))
    with pytest.raises(NinjaOneRejected, match="cannot rollback"):
        await backend.submit(
            BatchWork("pg-1-r2-ring-ninjaone-rollback", "rollback", 1, "prod", 0, [], {})
        )
    assert rig.ninja.posts == []


async def test_a_changed_response_shape_is_an_error_on_the_host_not_a_crash(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b10-ninjaone-apply", ["WEB1"]))
    original = rig.ninja._installs
    rig.ninja._installs = lambda request: [{"id": "x", "name": "KB", "status": 3}]  # type: ignore[method-assign]
    try:
        status = await backend.follow(job, {}, wait=5)
    finally:
        rig.ninja._installs = original  # type: ignore[method-assign]
    assert status.done and status.hosts["WEB1"].status == "failed"
    assert "'status' is 3, not the documented type" in status.hosts["WEB1"].output


async def test_status_reports_each_devices_own_state(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b11-ninjaone-apply", ["WEB1"]))
    await backend.follow(job, {}, wait=5)  # installed: the OS now wants a reboot
    names = ["WEB1", "WEB2", "LAPTOP9", "ghost"]
    got = {s.host: s for s in await backend.status([InventoryHost(name=n) for n in names], {})}
    assert got["WEB2"].ok and got["WEB2"].state == "online"
    assert not got["WEB1"].ok and got["WEB1"].state == "reboot pending"
    assert not got["LAPTOP9"].ok and got["LAPTOP9"].state == "offline"
    assert not got["ghost"].ok and got["ghost"].detail == "not a NinjaOne device"
    rig.now = 7200.0  # no contact for two hours
    stale = await backend.status([InventoryHost(name="WEB2")], {"contact_age": 3600})
    assert not stale[0].ok and stale[0].state == "stale"


def test_capabilities_and_options_are_checked_without_io() -> None:
    from integrations.backends.ninjaone.options import capabilities, check_options

    caps = capabilities({})
    assert caps.status and caps.assess and caps.inventory
    assert not caps.halt and not caps.rollback and not caps.reboot
    assert capabilities({"reboots_by_policy": True}).reboots_itself
    assert check_options({"apply_timeout": 600, "scan_after": False}) == []
    problems = check_options({"apply_timout": 5, "scan_after": "yes", "contact_age": -1})
    assert any("unknown option(s) apply_timout" in p for p in problems)
    assert any("ninjaone.scan_after: true or false" in p for p in problems)
    assert any("ninjaone.contact_age: seconds" in p for p in problems)


async def test_the_inventory_import_lists_offline_devices_as_coverage_gaps(
    rig: Rig, tmp_path: Path
) -> None:
    from integrations.inventory.backend_source import ToolInventory, parse_entry, tool_gaps

    opts = tmp_path / "ninjaone.yml"
    opts.write_text("device_filter: class in (WINDOWS_SERVER,WINDOWS_WORKSTATION)\n")
    inventory = ToolInventory(
        None, [parse_entry(f"backend:ninjaone:{opts}")], {"ninjaone": rig.backend()}
    )
    await inventory.load()
    assert sorted(h.name for h in inventory.hosts()) == [
        "LAPTOP9",
        "SQL1",
        "WEB1",
        "WEB2",
        "WEB3",
    ]  # no Mac: the filter went to NinjaOne as df
    gaps = tool_gaps(inventory.hosts())
    assert list(gaps) == ["LAPTOP9"] and "backend:ninjaone" in gaps["LAPTOP9"]


async def test_a_device_refused_by_the_apply_fails_alone(rig: Rig) -> None:
    org = rig.ninja.by_name("WEB1").org
    rig.ninja.add_device("LNX1", org, node_class="LINUX_SERVER", patches=[CU, NET])
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b13-ninjaone-apply", ["WEB1", "LNX1"]))
    status = await backend.follow(job, {}, wait=5)
    assert status.hosts["WEB1"].status == "applied"
    lnx = status.hosts["LNX1"]
    assert lnx.status == "failed" and lnx.failed_task == "os apply"
    assert "400: Device is not applicable for os apply." in lnx.output


async def test_hostile_device_records_are_a_clear_error_not_a_crash(rig: Rig) -> None:
    original = rig.ninja._device
    rig.ninja._device = lambda dev: {"id": dev.id, "systemName": ["x"], "offline": "no"}  # type: ignore[method-assign]
    try:
        with pytest.raises(NinjaOneError, match="'systemName' is \\['x'\\], not the documented"):
            await rig.backend().hosts({})
    finally:
        rig.ninja._device = original  # type: ignore[method-assign]
    assert rig.ninja.posts == []
