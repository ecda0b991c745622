"""Contract tests of the ``satellite`` backend: the real client over HTTP against the
Foreman + Katello emulator (tests/fakes/satellite_api.py): inventory with coverage gaps,
applicable errata, a job invocation per batch followed to per-host results, find by key
after a lost answer, errors, retries and paging."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from integrations.backends.satellite import (
    SatelliteAuthError,
    SatelliteBackend,
    SatelliteClient,
    SatelliteForbidden,
    SatelliteRejected,
    SatelliteUnavailable,
)
from tests.fakes.satellite_api import SatelliteEmulator
from workflows.backends import BatchWork, JobRef
from workflows.ports import InventoryHost

ERRATUM = {
    "id": 7,
    "errata_id": "RHSA-2026:1234",
    "type": "security",
    "severity": "Important",
    "title": "openssl security update",
    "cves": [{"cve_id": "CVE-2026-0001", "href": "https://access.redhat.com/..."}],
    "packages": ["openssl-3.0.13-1.x86_64", "openssl-libs-3.0.13-1.x86_64"],
}
BUGFIX = {
    "id": 8,
    "errata_id": "RHBA-2026:0042",
    "type": "bugfix",
    "severity": "",
    "cves": [],
    "packages": ["demo-app-1.1-2.noarch"],
}
NOW = dt.datetime(2026, 12, 7, 13, 0, tzinfo=dt.UTC)


@pytest_asyncio.fixture
async def sat() -> AsyncIterator[SatelliteEmulator]:
    emulator = SatelliteEmulator(steps=2)
    for i in range(1, 4):
        emulator.add_host(
            f"rhel{i}.example.com",
            collections=["web"],
            packages={"openssl": "3.0.11-1", "openssl-libs": "3.0.11-1", "demo-app": "1.0-1"},
            errata=[dict(ERRATUM), dict(BUGFIX)],
        )
    emulator.add_host("nosub.example.com", subscribed=False)
    emulator.add_host("stale.example.com", last_checkin="2026-11-01 00:00:00 UTC")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


clients: list[SatelliteClient] = []


@pytest_asyncio.fixture(autouse=True)
async def _close() -> AsyncIterator[None]:
    yield
    while clients:
        await clients.pop().close()


def backend(sat: SatelliteEmulator, *, password: str | None = None, **kw: Any) -> SatelliteBackend:
    kw.setdefault("max_attempts", 3)
    kw.setdefault("per_page", 2)  # small pages: every list is read across pages
    client = SatelliteClient(sat.url, "admin", SecretStr(password or sat.password), **kw)
    clients.append(client)
    return SatelliteBackend(client, poll_interval=0.01, launch_settle=0.05, now=lambda: NOW)


def work(names: list[str], *, action: str = "apply", key: str = "pg-1-r2-b0-satellite-apply"):  # type: ignore[no-untyped-def]
    versions = {n: {"openssl": "3.0.13-1", "openssl-libs": "3.0.13-1"} for n in names}
    return BatchWork(
        key=key,
        action=action,  # type: ignore[arg-type]
        rollout_id=1,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=n) for n in names],
        versions=versions if action == "apply" else {},
    )


HOSTS = ["rhel1.example.com", "rhel2.example.com", "rhel3.example.com"]


async def test_inventory_lists_hosts_with_groups_ids_and_coverage_gaps(
    sat: SatelliteEmulator,
) -> None:
    hosts = {h.name: h for h in await backend(sat).hosts({})}

    assert sorted(hosts) == sorted([*HOSTS, "nosub.example.com", "stale.example.com"])
    one = hosts["rhel1.example.com"]
    assert one.groups == {"RHEL9", "web"}
    assert one.vars["satellite_id"] == 1 and one.vars["satellite_os"] == "RedHat 9.4"
    assert "satellite_coverage_gap" not in one.vars
    assert "no subscription" in hosts["nosub.example.com"].vars["satellite_coverage_gap"]
    assert "not checked in since" in hosts["stale.example.com"].vars["satellite_coverage_gap"]
    # the same reason marks them as coverage gaps when the inventory is imported
    nosub = hosts["nosub.example.com"].vars
    assert nosub["patchgate_unreachable"] == nosub["satellite_coverage_gap"]
    assert "patchgate_unreachable" not in one.vars
    host_pages = [p for _, p in sat.calls if p.startswith("/api/v2/hosts?")]
    assert len(host_pages) == 3 and "page=3" in host_pages[-1]  # 5 hosts, 2 a page


async def test_assess_reports_errata_as_advisories_and_upgradable_packages(
    sat: SatelliteEmulator,
) -> None:
    hosts = [InventoryHost(name="rhel1.example.com"), InventoryHost(name="ghost.example.com")]
    found = {a.host: a for a in await backend(sat).assess(hosts, {})}

    one = found["rhel1.example.com"]
    assert one.error is None and one.reachable
    (rhsa, rhba) = one.advisories
    assert (rhsa.id, rhsa.severity, tuple(rhsa.cves)) == (
        "RHSA-2026:1234",
        "high",
        ("CVE-2026-0001",),
    )
    assert rhsa.packages == {"openssl": "3.0.13-1", "openssl-libs": "3.0.13-1"}
    assert rhba.severity is None
    upgradable = {u.name: (u.current, u.candidate, u.security) for u in one.upgradable}
    assert upgradable == {
        "demo-app": ("1.0-1", "1.1-2", False),
        "openssl": ("3.0.11-1", "3.0.13-1", True),
        "openssl-libs": ("3.0.11-1", "3.0.13-1", True),
    }
    assert found["ghost.example.com"].error == "Satellite does not know this host"


async def test_a_batch_is_one_job_invocation_installing_exactly_the_pinned_packages(
    sat: SatelliteEmulator,
) -> None:
    sat.host("rhel3.example.com").script = "failed"
    sat.host("rhel3.example.com").message = "Error: Transaction test error: file conflicts"
    b = backend(sat)

    job = await b.submit(work(HOSTS))
    status = await b.follow(job, {}, wait=5)

    (post,) = sat.posts
    assert post["feature"] == "katello_package_install"
    assert post["inputs"] == {"package": "openssl-0:3.0.13-1 openssl-libs-0:3.0.13-1"}
    assert post["search_query"] == "id ^ (1,2,3)"
    assert post["description_format"] == "PatchGate pg-1-r2-b0-satellite-apply"
    assert status.done and status.state == "failed"
    one = status.hosts["rhel1.example.com"]
    assert one.status == "applied"
    assert one.after == {"openssl": "3.0.13-1", "openssl-libs": "3.0.13-1"}
    three = status.hosts["rhel3.example.com"]
    assert three.status == "failed" and three.exit_code == 1
    assert "file conflicts" in three.output
    assert three.after == {"openssl": "3.0.11-1", "openssl-libs": "3.0.11-1"}


async def test_an_unreachable_and_a_cancelled_host_are_reported_as_such(
    sat: SatelliteEmulator,
) -> None:
    sat.host("rhel1.example.com").script = "unreachable"
    sat.host("rhel2.example.com").script = "cancelled"
    b = backend(sat)

    status = await b.follow(await b.submit(work(HOSTS[:2])), {}, wait=5)

    assert status.hosts["rhel1.example.com"].status == "unreachable"
    assert "Failed to establish connection" in status.hosts["rhel1.example.com"].output
    assert status.hosts["rhel2.example.com"].status == "failed"
    assert "cancelled" in (status.hosts["rhel2.example.com"].failed_task or "")


async def test_follow_returns_not_done_while_the_task_runs(sat: SatelliteEmulator) -> None:
    b = backend(sat)
    job = await b.submit(work(HOSTS[:1]))
    sat.hold(int(job.job_id))

    status = await b.follow(job, {}, wait=0.05)

    assert not status.done and status.hosts == {}
    sat.invocations[int(job.job_id)].held = False
    assert (await b.follow(job, {}, wait=5)).done


async def test_a_lost_answer_is_found_by_its_key_and_not_invoked_twice(
    sat: SatelliteEmulator,
) -> None:
    sat.lose_invocation_answers(1)
    b = backend(sat)

    job = await b.submit(work(HOSTS[:1]))

    assert len(sat.invocations) == 1 and job.job_id == "1"
    assert await b.find("pg-1-r2-b0-satellite-apply", {}) == job
    assert await b.find("pg-1-r2-b1-satellite-apply", {}) is None  # exact, never a guess


async def test_reboot_is_a_power_action_job_and_rollback_is_refused(
    sat: SatelliteEmulator,
) -> None:
    b = backend(sat)
    job = await b.submit(work(HOSTS[:2], action="reboot", key="pg-1-r2-b0-satellite-reboot"))
    assert sat.posts[-1]["feature"] == "power_action"
    assert sat.posts[-1]["inputs"] == {"action": "restart"}
    assert (await b.follow(job, {}, wait=5)).hosts["rhel2.example.com"].status == "applied"

    with pytest.raises(SatelliteRejected, match="puts recorded"):
        await b.submit(work(HOSTS[:1], action="rollback"))
    assert not b.capabilities({}).rollback and b.capabilities({}).reboot
    assert not b.capabilities({"reboot": False}).reboot


async def test_a_wrong_password_is_an_auth_error_that_does_not_show_it(
    sat: SatelliteEmulator,
) -> None:
    with pytest.raises(SatelliteAuthError) as raised:
        await backend(sat, password="wrong-secret-value").submit(work(HOSTS[:1]))
    assert raised.value.status == 401 and "PATCHGATE_SATELLITE_PASSWORD" in str(raised.value)
    assert "wrong-secret-value" not in str(raised.value) and sat.invocations == {}


async def test_a_viewer_is_forbidden_to_invoke(sat: SatelliteEmulator) -> None:
    sat.viewers["viewer"] = "pw"
    client = SatelliteClient(sat.url, "viewer", SecretStr("pw"), max_attempts=1)
    clients.append(client)
    with pytest.raises(SatelliteForbidden, match="create_job_invocations"):
        await SatelliteBackend(client).submit(work(HOSTS[:1]))


async def test_an_unknown_feature_is_rejected_with_foremans_message(
    sat: SatelliteEmulator,
) -> None:
    w = work(HOSTS[:1])
    w = BatchWork(**{**w.__dict__, "options": {"apply_feature": "no_such_feature"}})
    with pytest.raises(SatelliteRejected, match="not a remote execution feature"):
        await backend(sat).submit(w)


async def test_throttled_reads_are_retried_after_retry_after(sat: SatelliteEmulator) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sat.fail_next(429, times=2, path="/api/v2/hosts", retry_after="3")
    client = SatelliteClient(sat.url, "admin", SecretStr(sat.password), sleep=sleep)
    clients.append(client)
    hosts = await SatelliteBackend(client, now=lambda: NOW).hosts({})
    assert len(hosts) == 5 and slept == [3.0, 3.0]

    sat.fail_next(503, times=5, path="/api/v2/hosts")
    with pytest.raises(SatelliteUnavailable):
        await SatelliteBackend(client).hosts({})


async def test_hosts_satellite_does_not_know_and_mixed_shares_are_refused_before_invoking(
    sat: SatelliteEmulator,
) -> None:
    with pytest.raises(SatelliteRejected, match="does not know: ghost"):
        await backend(sat).submit(work(["rhel1.example.com", "ghost"]))
    w = work(HOSTS[:2])
    versions = {HOSTS[0]: {"openssl": "3.0.13-1"}, HOSTS[1]: {"demo-app": "1.1-2"}}
    with pytest.raises(SatelliteRejected, match="different shares"):
        await backend(sat).submit(BatchWork(**{**w.__dict__, "versions": versions}))
    with pytest.raises(SatelliteRejected, match="unusable in a search"):
        await backend(sat).submit(work(["a,b) or (id"]))
    assert sat.invocations == {}


async def test_a_job_whose_description_is_not_the_key_is_a_clear_error(
    sat: SatelliteEmulator,
) -> None:
    b = backend(sat)
    job = await b.submit(work(HOSTS[:1]))
    with pytest.raises(Exception, match="does not carry"):
        await b.follow(JobRef(backend="satellite", job_id=job.job_id, key="other"), {}, wait=5)


async def test_the_final_read_asks_for_each_hosts_job_status(sat: SatelliteEmulator) -> None:
    b = backend(sat)
    await b.follow(await b.submit(work(HOSTS[:1])), {}, wait=5)

    reads = [p for m, p in sat.calls if m == "GET" and p.startswith("/api/job_invocations/1")]
    assert reads[-2].endswith("?host_status=true")  # then the host's output
    assert reads[-1] == "/api/job_invocations/1/hosts/1"


async def test_an_invocation_without_a_task_is_a_clear_error_not_a_crash(
    sat: SatelliteEmulator,
) -> None:
    from integrations.backends.satellite import SatelliteError

    b = backend(sat)
    job = await b.submit(work(HOSTS[:1]))
    original = sat._invocation_row

    def without_task(inv: Any) -> dict[str, Any]:
        row = original(inv)
        row.pop("task")
        row.pop("dynflow_task")
        return row

    sat._invocation_row = without_task  # type: ignore[method-assign]
    with pytest.raises(SatelliteError, match="has no task"):
        await b.follow(job, {}, wait=5)
