"""Contract tests of the ``satellite`` backend's host status (the ``tool`` health check)
and halt (a job invocation cancelled), the real client over HTTP against the Foreman +
Katello emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from integrations.backends.satellite import SatelliteError
from tests.fakes.satellite_api import SatelliteEmulator
from tests.integration.test_satellite_backend import HOSTS, backend, clients, work
from workflows.backends import DeviceStatus, JobRef
from workflows.ports import InventoryHost


@pytest_asyncio.fixture
async def sat() -> AsyncIterator[SatelliteEmulator]:
    emulator = SatelliteEmulator(steps=2)
    for name in HOSTS:
        emulator.add_host(name, packages={"openssl": "3.0.11-1", "openssl-libs": "3.0.11-1"})
    emulator.add_host("nosub.example.com", subscribed=False)
    emulator.add_host("stale.example.com", last_checkin="2026-11-01 00:00:00 UTC")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest_asyncio.fixture(autouse=True)
async def _close() -> AsyncIterator[None]:
    yield
    while clients:
        await clients.pop().close()


def _hosts(*names: str) -> list[InventoryHost]:
    return [InventoryHost(name=n) for n in names]


async def test_status_reports_each_hosts_global_status_registration_and_check_in(
    sat: SatelliteEmulator,
) -> None:
    sat.host("rhel2.example.com").global_status = 2
    sat.host("rhel3.example.com").global_status = 1
    names = [*HOSTS, "nosub.example.com", "stale.example.com", "ghost.example.com", "a b"]

    found = {s.host: s for s in await backend(sat).status(_hosts(*names), {})}

    assert list(found) == names  # one answer per host asked for, none left out
    assert found["rhel1.example.com"] == DeviceStatus("rhel1.example.com", True, "OK")
    assert not found["rhel2.example.com"].ok and found["rhel2.example.com"].state == "Error"
    assert found["rhel3.example.com"].ok and found["rhel3.example.com"].state == "Warning"
    assert not found["nosub.example.com"].ok
    assert "not registered" in found["nosub.example.com"].detail
    assert "not checked in since" in found["stale.example.com"].detail
    assert found["ghost.example.com"].detail == "Satellite does not know this host"
    assert found["a b"].detail == "not a plain host name"
    asked = [p for m, p in sat.calls if "/status/global" in p]
    assert asked == ["/api/hosts/1/status/global", "/api/hosts/2/status/global",
                     "/api/hosts/3/status/global"]  # fmt: skip


async def test_a_status_of_another_shape_or_an_api_error_is_that_hosts_failure(
    sat: SatelliteEmulator,
) -> None:
    sat.host("rhel1.example.com").global_status = 2
    sat.fail_next(404, path="/api/hosts/2/status")
    original = sat._route

    async def odd(request, parts):  # type: ignore[no-untyped-def]
        if parts[-2:] == ["status", "global"] and parts[2] == "3":
            from aiohttp import web

            return web.json_response({"status": "fine"})
        return await original(request, parts)

    sat._route = odd  # type: ignore[method-assign]
    found = {s.host: s for s in await backend(sat).status(_hosts(*HOSTS), {})}

    assert "answered 404" in found["rhel2.example.com"].detail
    assert not found["rhel3.example.com"].ok
    assert "unknown shape" in found["rhel3.example.com"].detail


async def test_halt_cancels_a_running_invocation_once_and_leaves_a_finished_one(
    sat: SatelliteEmulator,
) -> None:
    sat.steps = 10**6  # the task keeps running
    satellite = backend(sat)
    job = await satellite.submit(work(HOSTS))
    assert not (await satellite.follow(job, {}, wait=0.05)).done

    await satellite.halt(job, {}, reason="failure budget exceeded in ring prod")
    await satellite.halt(job, {}, reason="again")  # idempotent: finished now, left as it is

    assert sat.cancelled == [int(job.job_id)]
    status = await satellite.follow(job, {}, wait=1.0)
    assert status.done
    assert {h.status for h in status.hosts.values()} == {"failed"}
    assert all("cancelled" in (h.failed_task or "") for h in status.hosts.values())
    assert ("POST", f"/api/job_invocations/{job.job_id}/cancel") in sat.calls


async def test_halting_an_unknown_invocation_is_a_clear_error(sat: SatelliteEmulator) -> None:
    with pytest.raises(SatelliteError, match="not found"):
        await backend(sat).halt(JobRef("satellite", "999", "pg-x"), {}, reason="abort")


def test_satellite_declares_status_and_halt() -> None:
    from integrations.backends.satellite.options import capabilities

    caps = capabilities({})
    assert caps.status and caps.halt and not caps.rollback
