"""Contract tests of the ``automox`` backend: the real client over HTTP against the
Automox console API emulator (tests/fakes/automox_api.py): inventory, assessment, device
commands to per-device results, errors, rate limits, a lost answer, a crash."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.automox import (
    AutomoxAuthError,
    AutomoxBackend,
    AutomoxClient,
    AutomoxForbidden,
    AutomoxNotFound,
    AutomoxRejected,
    AutomoxUnavailable,
)
from tests.fakes.automox_api import AutomoxEmulator
from workflows.backends import HOST_BACKEND_VAR, BatchWork
from workflows.ports import InventoryHost

PINNED = {"openssl": "3.0.13-1", "curl": "8.5.0-2"}


@pytest_asyncio.fixture
async def amx() -> AsyncIterator[AutomoxEmulator]:
    emulator = AutomoxEmulator(steps=2)
    await emulator.start()
    web = emulator.add_group("Web servers")
    for name in ("web1", "web2", "web3"):
        emulator.add_device(
            name,
            installed={"openssl": "3.0.11-1", "curl": "8.5.0-1", "bash": "5.2"},
            available={"openssl": "3.0.13-1", "curl": "8.5.0-2"},
            severity={"openssl": "critical", "curl": "low"},
            cves={"openssl": ["CVE-2024-0727"]},
            group=web,
        )
    emulator.add_device(
        "laptop9",
        installed={"chrome": "119"},
        os_family="Windows",
        os_name="Windows 11",
        connected=False,
    )
    try:
        yield emulator
    finally:
        await emulator.stop()


class Rig:
    def __init__(self, amx: AutomoxEmulator, journal: Path) -> None:
        self.amx = amx
        self.journal = journal
        self.clients: list[AutomoxClient] = []

    def backend(
        self, *, key: str | None = None, org: int | None = None, **kw: Any
    ) -> AutomoxBackend:
        kw.setdefault("max_attempts", 3)
        client = AutomoxClient(
            SecretStr(key or self.amx.key),
            org or self.amx.org,
            url=self.amx.url,
            sleep=_no_sleep,
            **kw,
        )
        self.clients.append(client)
        return AutomoxBackend(client, self.journal, poll_interval=0.01, sleep=_no_sleep)


async def _no_sleep(_: float) -> None:
    return None


@pytest_asyncio.fixture
async def rig(amx: AutomoxEmulator, tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(amx, tmp_path / "journal")
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def _work(key: str, hosts: list[str], action: str = "apply") -> BatchWork:
    return BatchWork(
        key=key,
        action=action,  # type: ignore[arg-type]
        rollout_id=7,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions={h: dict(PINNED) for h in hosts} if action == "apply" else {},
    )


async def test_devices_become_inventory_hosts_with_their_group_os_and_automox_id(rig: Rig) -> None:
    hosts = {h.name: h for h in await rig.backend(page_limit=2).hosts({})}
    assert sorted(hosts) == ["laptop9", "web1", "web2", "web3"]  # across two pages
    web1 = hosts["web1"]
    assert web1.groups == frozenset({"automox", "Web servers"})
    assert web1.vars["automox_id"] == rig.amx.by_name("web1").id
    assert web1.vars["automox_os_name"] == "Ubuntu" and web1.vars[HOST_BACKEND_VAR] == "automox"
    assert hosts["laptop9"].groups == frozenset({"automox", "Default"})
    assert hosts["laptop9"].vars["automox_connected"] is False
    # PatchGate's OS family from Automox's (issue 21): its checks and displays use it
    assert hosts["laptop9"].vars["patchgate_os_family"] == "windows"
    assert web1.vars["patchgate_os_family"] == "linux"
    # a coverage gap when the inventory is imported (integrations.inventory.backend_source)
    assert "is disconnected" in hosts["laptop9"].vars["patchgate_unreachable"]
    assert all(
        "patchgate_unreachable" not in h.vars for h in hosts.values() if h.vars["automox_connected"]
    )
    pages = [q["page"] for m, p, q in rig.amx.requests if p == "/api/servers"]
    assert pages == ["0", "1", "2"][: len(pages)] and len(pages) >= 2


async def test_pending_packages_become_upgradable_with_severity_and_cves(rig: Rig) -> None:
    hosts = [InventoryHost(name="web1"), InventoryHost(name="laptop9"), InventoryHost(name="nope")]
    found = {a.host: a for a in await rig.backend().assess(hosts, {})}
    web1 = found["web1"]
    assert web1.reachable and web1.error is None
    upg = {u.name: (u.current, u.candidate, u.security) for u in web1.upgradable}
    assert upg == {"openssl": ("3.0.11-1", "3.0.13-1", True), "curl": ("8.5.0-1", "8.5.0-2", False)}
    (adv,) = [a for a in web1.advisories if a.packages == {"openssl": "3.0.13-1"}]
    assert adv.cves == ("CVE-2024-0727",) and adv.severity == "critical"
    assert not found["laptop9"].reachable
    assert "disconnected since 2026-12-01" in (found["laptop9"].error or "")
    assert found["nope"].error == "not an Automox device"


async def test_a_batch_queues_install_update_naming_the_pinned_packages_and_follows_to_applied(
    rig: Rig,
) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b0-automox-apply", ["web1", "web2"]))
    assert [(b["command_type_name"], b["args"]) for _, b in rig.amx.posts] == [
        ("InstallUpdate", "curl openssl")
    ] * 2
    first = await backend.follow(job, {}, wait=0)
    assert not first.done  # the agents have not run it yet
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.state == "successful"
    assert {h: o.status for h, o in status.hosts.items()} == {"web1": "applied", "web2": "applied"}
    assert status.hosts["web1"].after == PINNED
    command = rig.amx.by_name("web1").queue[0]["id"]
    assert status.hosts["web1"].output.startswith(f"Automox command {command} on device ")
    assert rig.amx.by_name("web3").installed["openssl"] == "3.0.11-1"  # not in the batch


async def test_a_device_whose_install_fails_is_reported_failed_with_the_agent_response(
    rig: Rig,
) -> None:
    rig.amx.fail_device("web2", "E: dpkg was interrupted")
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b1-automox-apply", ["web1", "web2"]))
    status = await backend.follow(job, {}, wait=5)
    assert status.done and status.state == "failed"
    assert status.hosts["web1"].status == "applied"
    web2 = status.hosts["web2"]
    assert web2.status == "failed" and web2.failed_task == "InstallUpdate"
    assert "openssl" in web2.output and "E: dpkg was interrupted" in web2.output


async def test_a_disconnected_device_stays_queued_then_counts_unreachable(rig: Rig) -> None:
    rig.amx.by_name("web3").connected = False
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b2-automox-apply", ["web3"]))
    assert not (await backend.follow(job, {}, wait=0.05)).done
    status = await backend.follow(job, {"command_timeout": 0.001}, wait=1)
    assert status.hosts["web3"].status == "unreachable"
    assert (
        "still queued" in status.hosts["web3"].output
        and "disconnected" in status.hosts["web3"].output
    )


async def test_a_lost_queue_answer_is_found_in_the_device_queue_not_queued_twice(rig: Rig) -> None:
    rig.amx.lose_queue_answers(1)
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b3-automox-apply", ["web1"]))
    assert len(rig.amx.posts) == 1
    assert (await backend.follow(job, {}, wait=5)).hosts["web1"].status == "applied"


async def test_after_a_crash_find_returns_the_job_and_submit_does_not_queue_again(
    rig: Rig,
) -> None:
    work = _work("pg-1-r2-b4-automox-apply", ["web1", "web2"])
    await rig.backend().submit(work)
    fresh = rig.backend()  # a new process: only the journal survives
    assert await fresh.find("pg-1-r2-b9-automox-apply", {}) is None
    found = await fresh.find(work.key, {})
    assert found is not None and found.job_id == work.key
    await fresh.submit(work)
    assert len(rig.amx.posts) == 2  # one per device, never again
    assert (await fresh.follow(found, {}, wait=5)).state == "successful"


async def test_reboot_is_a_reboot_command_and_rollback_is_refused(rig: Rig) -> None:
    backend = rig.backend()
    assert backend.capabilities({}).reboot and not backend.capabilities({}).rollback
    job = await backend.submit(_work("pg-1-r2-b0-automox-reboot", ["web1"], "reboot"))
    assert rig.amx.posts[-1][1] == {"command_type_name": "Reboot"}
    assert (await backend.follow(job, {}, wait=5)).hosts["web1"].status == "applied"
    with pytest.raises(AutomoxRejected, match="cannot rollback"):
        await backend.submit(_work("pg-1-r2-ring-automox-rollback", ["web1"], "rollback"))


async def test_rate_limits_are_waited_out_as_retry_after_says(rig: Rig) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = AutomoxClient(SecretStr(rig.amx.key), rig.amx.org, url=rig.amx.url, sleep=sleep)
    rig.clients.append(client)
    rig.amx.fail_next(429, times=2, retry_after=3)
    hosts = await AutomoxBackend(client, rig.journal).hosts({})
    assert len(hosts) == 4 and waits == [3.0, 3.0]
    rig.amx.fail_next(429, times=1, retry_after=600)  # longer than a call may wait
    with pytest.raises(AutomoxUnavailable, match="429"):
        await AutomoxBackend(client, rig.journal).hosts({})


async def test_errors_are_translated_and_the_key_is_never_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AutomoxAuthError, match="PATCHGATE_AUTOMOX_API_KEY"):
        await rig.backend(key="wrong-key").hosts({})
    with pytest.raises(AutomoxForbidden):
        await rig.backend(org=1).hosts({})
    rig.backend()
    with pytest.raises(AutomoxNotFound):
        await rig.clients[-1].get("servers/999")
    with pytest.raises(AutomoxRejected, match="no Automox device is named ghost"):
        await rig.backend().submit(_work("pg-1-r2-b5-automox-apply", ["ghost"]))
    assert rig.amx.key not in caplog.text and "wrong-key" not in caplog.text
    assert rig.amx.posts == []


async def test_a_changed_response_shape_is_an_error_on_the_host_not_a_crash(rig: Rig) -> None:
    backend = rig.backend()
    job = await backend.submit(_work("pg-1-r2-b6-automox-apply", ["web1"]))
    original = rig.amx._packages
    rig.amx._packages = lambda dev: [{"name": "openssl", "installed": "yes"}]  # type: ignore[method-assign]
    try:
        status = await backend.follow(job, {}, wait=5)
    finally:
        rig.amx._packages = original  # type: ignore[method-assign]
    assert status.done and status.hosts["web1"].status == "failed"
    assert "'installed' is 'yes', not the documented type" in status.hosts["web1"].output


async def test_a_rate_limited_follow_leaves_the_devices_pending_and_a_final_result_is_kept(
    rig: Rig,
) -> None:
    backend = rig.backend(max_retry_wait=1)
    job = await backend.submit(_work("pg-1-r2-b7-automox-apply", ["web1", "web2"]))
    rig.amx.fail_next(429, times=1, retry_after=60)  # longer than the client waits
    assert not (await backend.follow(job, {}, wait=0)).done  # not failed: asked again later
    done = await backend.follow(job, {}, wait=5)
    assert done.state == "successful"
    reads = len(rig.amx.requests)
    again = await backend.follow(job, {}, wait=0)
    assert again.hosts == done.hosts and len(rig.amx.requests) == reads  # not read again


async def test_batches_reuse_the_rate_limited_device_listing(rig: Rig) -> None:
    backend = rig.backend()
    await backend.submit(_work("pg-1-r2-b0-automox-apply", ["web1"]))
    await backend.submit(_work("pg-1-r2-b1-automox-apply", ["web2"]))
    listings = [p for m, p, q in rig.amx.requests if p == "/api/servers"]
    assert len(listings) == 1  # GET /servers is limited to < 30 a minute
    rig.amx.add_device("web1", installed={})  # now ambiguous, but the cache is fresh
    fresh = rig.backend(max_attempts=1)
    with pytest.raises(AutomoxRejected, match="several devices are named web1"):
        await fresh.submit(_work("pg-1-r2-b2-automox-apply", ["web1"]))


def test_plan_options_are_checked_without_io() -> None:
    from integrations.backends.automox.options import check_options

    assert check_options({"command_timeout": 600, "reboot": False}) == []
    problems = check_options({"command_timout": 5, "reboot": "yes"})
    assert any("unknown option(s) command_timout" in p for p in problems)
    assert any("automox.reboot: true or false" in p for p in problems)


async def test_status_reports_the_agent_connection_reboot_and_compliance(
    rig: Rig, amx: AutomoxEmulator
) -> None:
    amx.by_name("web2").needs_reboot = True
    amx.by_name("web3").compliant = False
    asked = [InventoryHost(name=n) for n in ("web1", "web2", "web3", "laptop9", "ghost")]

    found = {s.host: s for s in await rig.backend().status(asked, {})}
    strict = {s.host: s for s in await rig.backend().status(asked, {"require_compliant": True})}

    assert list(found) == ["web1", "web2", "web3", "laptop9", "ghost"]
    assert found["web1"].ok and found["web1"].state == "connected, compliant"
    assert not found["web2"].ok and found["web2"].state == "needs reboot"
    assert found["web3"].ok  # compliance counts only when the plan asks for it
    assert not strict["web3"].ok and "compliant=False" in strict["web3"].detail
    assert not found["laptop9"].ok and "disconnected since" in found["laptop9"].detail
    assert found["ghost"].detail == "not an Automox device"


async def test_a_device_of_another_shape_is_that_hosts_failed_status(
    rig: Rig, amx: AutomoxEmulator
) -> None:
    original = amx._server
    amx._server = lambda dev: {**original(dev), "connected": "yes"}  # type: ignore[method-assign]
    (status,) = await rig.backend().status([InventoryHost(name="web1")], {})
    assert not status.ok and "not the documented type" in status.detail


def test_automox_declares_status_but_no_halt() -> None:
    from integrations.backends.automox.options import capabilities, check_options

    caps = capabilities({})
    assert caps.status and not caps.halt and not caps.rollback
    assert check_options({"require_compliant": "yes"}) == [
        "automox.require_compliant: true or false, got 'yes'"
    ]
