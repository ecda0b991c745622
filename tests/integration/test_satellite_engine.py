"""A rollout whose prod ring is patched by the ``satellite`` backend, through the real
engine, the real Satellite client over HTTP and the Foreman + Katello emulator: one job
invocation per batch, hosts reaching the pinned versions, and a failed host counted
against the ring's failure budget. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import sqlalchemy as sa
from pydantic import SecretStr

from integrations.backends import build_backends
from integrations.backends.satellite import SatelliteBackend, SatelliteClient
from tests.backendkit import mixed_hosts, mixed_plan
from tests.enginekit import Rig
from tests.fakes.satellite_api import SatelliteEmulator
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.models import HostRun

PROD = ("prod-01", "prod-02", "prod-03")
# What Katello lists applicable on each host (GET /api/v2/hosts/:id/errata): the engine
# assesses Satellite's hosts through Satellite (workflows/engine/_toolassess.py).
ERRATA = [
    {
        "id": 7,
        "errata_id": "RHSA-2026:1234",
        "type": "security",
        "severity": "Important",
        "title": "openssl security update",
        "cves": [{"cve_id": "CVE-2026-0001", "href": "https://access.redhat.com/"}],
        "packages": ["openssl-3.0.13-1.x86_64"],
    },
]


@pytest_asyncio.fixture
async def sat() -> AsyncIterator[SatelliteEmulator]:
    emulator = SatelliteEmulator(steps=2)
    for name in PROD:
        emulator.add_host(
            name,
            packages={"openssl": "3.0.11-1", "demo-app": "1.0", "bash": "5.2"},
            errata=[dict(e) for e in ERRATA],
        )
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


class SatelliteRig(Rig):
    def __init__(self, db: Database, sat: SatelliteEmulator) -> None:
        hosts = [h for h in mixed_hosts() if h.name != "stg-02"]
        super().__init__(db, hosts=hosts)
        self.client = SatelliteClient(sat.url, "admin", SecretStr(sat.password))
        self.backend = SatelliteBackend(self.client, poll_interval=0.01, launch_settle=0.0)

    def engine(self, hook=None) -> Engine:  # type: ignore[no-untyped-def]
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                backends=build_backends(executor=self.executor, satellite=self.backend),
                job_poll=0.0,
                job_wait=5.0,
            ),
            hook=hook,
        )


def satellite_plan():  # type: ignore[no-untyped-def]
    # Satellite cannot roll back (declared): the plan must not ask for it.
    plan = mixed_plan(backends={"ssh": {}, "satellite": {}}, rollback="none")
    rings = list(plan.rings)
    rings[2] = rings[2].model_copy(update={"backend": "satellite"})
    return plan.model_copy(update={"rings": rings})


async def _runs(db: Database, rollout_id: int) -> dict[str, HostRun]:
    async with read_only(db) as session:
        runs = await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        return {r.host_name: r for r in runs}


async def test_a_satellite_ring_is_patched_by_job_invocations_and_succeeds(
    db: Database, sat: SatelliteEmulator
) -> None:
    rig = SatelliteRig(db, sat)
    try:
        rollout_id = await rig.start(satellite_plan())
        await rig.approve_all(rig.engine(), rollout_id)
    finally:
        await rig.client.close()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    runs = await _runs(db, rollout_id)
    for name in PROD:
        assert (runs[name].state, runs[name].backend) == ("healthy", "satellite")
        # Satellite's share of the pinned set: what its applicable errata fix
        assert runs[name].after_versions == {"openssl": "3.0.13-1"}
        assert sat.host(name).packages["openssl"] == "3.0.13-1"
    assert runs["dev-01"].backend == "ssh"
    # One invocation per batch of prod (batch size 2), by host id, carrying the job key.
    assert [p["search_query"] for p in sat.posts] == ["id ^ (1,2)", "id ^ (3)"]
    assert all(p["description_format"].startswith("PatchGate pg-") for p in sat.posts)
    assert rig.executor.installed_on("prod-01")["openssl"] == "3.0.11-1"  # not SSH's doing


async def test_a_host_satellite_fails_is_counted_against_the_budget(
    db: Database, sat: SatelliteEmulator
) -> None:
    sat.host("prod-02").script = "failed"
    sat.host("prod-02").message = "Error: Unable to find a match: openssl-0:3.0.13-1"
    rig = SatelliteRig(db, sat)
    try:
        rollout_id = await rig.start(satellite_plan())
        await rig.approve_all(rig.engine(), rollout_id)
    finally:
        await rig.client.close()

    runs = await _runs(db, rollout_id)
    assert runs["prod-02"].state == "failed"
    assert "Unable to find a match" in (runs["prod-02"].output_tail or "")
    assert runs["prod-01"].state == runs["prod-03"].state == "healthy"
    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"  # budget 1


async def test_a_lost_invocation_answer_is_found_by_its_key_not_invoked_twice(
    db: Database, sat: SatelliteEmulator
) -> None:
    sat.lose_invocation_answers(1)  # the first batch's invocation is created, its answer lost
    rig = SatelliteRig(db, sat)
    try:
        rollout_id = await rig.start(satellite_plan())
        await rig.approve_all(rig.engine(), rollout_id)
    finally:
        await rig.client.close()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    assert len(sat.invocations) == 2  # one per batch, none twice
    assert [p["search_query"] for p in sat.posts] == ["id ^ (1,2)", "id ^ (3)"]


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine swallows it."""


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_crash(e) for e in exc.exceptions)
    return isinstance(exc, Crash)


async def test_a_crash_after_the_invocation_and_before_its_id_is_stored_finds_it_again(
    db: Database, sat: SatelliteEmulator
) -> None:
    rig = SatelliteRig(db, sat)
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)
        if name == "job.apply.submitted" and seen.count(name) == 1:
            raise Crash(name)  # Satellite has the invocation; PatchGate has not its id

    try:
        rollout_id = await rig.start(satellite_plan())
        crashed = False
        try:
            await rig.approve_all(rig.engine(hook), rollout_id)
        except BaseException as exc:
            if not _is_crash(exc):
                raise
            crashed = True
            await rig.approve_all(rig.engine(), rollout_id)  # a new engine resumes
    finally:
        await rig.client.close()

    assert crashed
    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded", rollout.reason
    assert len(sat.invocations) == 2  # found again by its key, never invoked twice
    searches = [p for m, p in sat.calls if m == "GET" and "description" in p]
    assert searches, "the resumed engine looked the invocation up by its key"
