"""The fleet-tools rig of the end-to-end tests (issue 20): simulated hosts that Satellite
(the Foreman + Katello emulator) and Automox (the console API emulator) patch, the real
Bolt app on a real port, and an outbox worker delivering to the Slack and Jira emulators
(on-call: ``C0ONCALL``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr

from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.slack.app import build_bolt_app
from integrations.backends import build_backends
from integrations.backends.automox import AutomoxBackend, AutomoxClient
from integrations.backends.satellite import SatelliteBackend, SatelliteClient
from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer
from tests.enginekit import APPROVER_1, APPROVER_2, Rig, make_plan
from tests.fakes.automox_api import AutomoxEmulator
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.satellite_api import SatelliteEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.slack.conftest import SECRET, TOKEN, Bot, StubLeadership, make_deps, make_settings
from workflows.backends import HOST_BACKEND_VAR
from workflows.db import Database
from workflows.engine import Engine, EngineDeps
from workflows.notify import TOPIC
from workflows.outbox import OutboxWorker
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost

ONCALL = "C0ONCALL"


RHEL = ("rhel-01", "rhel-02")  # Satellite's hosts
ENDPOINTS = ("ep-01", "ep-02")  # Automox's devices
FAILING = "rhel-02"
CVE = "CVE-2026-0001"
PACKAGES = {"openssl": "3.0.11-1", "demo-app": "1.0", "bash": "5.2"}
ERRATUM = {  # as Katello lists an applicable erratum (GET /api/v2/hosts/:id/errata)
    "id": 7,
    "errata_id": "RHSA-2026:1234",
    "type": "security",
    "severity": "Important",
    "title": "openssl security update",
    "cves": [{"cve_id": CVE, "href": "https://access.redhat.com/"}],
    "packages": ["openssl-3.0.13-1.x86_64"],
}


class FleetRig(Rig):
    """Simulated hosts (for PatchGate's own health checks) that Satellite and Automox
    patch through their emulators."""

    def __init__(
        self, db: Database, sat: SatelliteEmulator, amx: AutomoxEmulator, journal: Path
    ) -> None:
        hosts = [InventoryHost(name=n, groups=frozenset({"rhel", "fleet"})) for n in RHEL]
        hosts += [
            InventoryHost(
                name=n,
                groups=frozenset({"endpoints", "fleet"}),
                vars={HOST_BACKEND_VAR: "automox"},  # in a ring on Satellite too
            )
            for n in ENDPOINTS
        ]
        super().__init__(db, hosts=hosts)
        self.sat_client = SatelliteClient(sat.url, "admin", SecretStr(sat.password))
        self.amx_client = AutomoxClient(SecretStr(amx.key), amx.org, url=amx.url)
        self.satellite = SatelliteBackend(self.sat_client, poll_interval=0.01, launch_settle=0.0)
        self.automox = AutomoxBackend(self.amx_client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None, *, job_wait: float = 5.0) -> Engine:
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                backends=build_backends(
                    executor=self.executor, satellite=self.satellite, automox=self.automox
                ),
                job_poll=0.0,
                job_wait=job_wait,
            ),
            hook=hook,
        )

    async def close(self) -> None:
        await self.sat_client.close()
        await self.amx_client.close()


RINGS: list[dict[str, Any]] = [
    {
        "name": "rhel",
        "hosts": "group:rhel",
        "batch": 2,
        "failure_budget": 1,
        "backend": "satellite",
    },
    {
        "name": "endpoints",
        "hosts": "group:endpoints",
        "batch": 2,
        "failure_budget": 0,
        "backend": "automox",
        "gate": {
            "type": "approval",
            "approvers": {"users": [APPROVER_1, APPROVER_2]},
            "timeout": "4h",
        },
    },
]
FLEET: dict[str, Any] = {
    "rings": RINGS,
    "backends": {"satellite": {}, "automox": {}},
    "rollback": "none",  # neither tool can roll back
}


def fleet_plan() -> PatchPlan:
    return make_plan(**FLEET)


@pytest_asyncio.fixture
async def sat() -> AsyncIterator[SatelliteEmulator]:
    emulator = SatelliteEmulator(steps=2)
    for name in RHEL:
        emulator.add_host(name, packages=dict(PACKAGES), errata=[dict(ERRATUM)])
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest_asyncio.fixture
async def amx() -> AsyncIterator[AutomoxEmulator]:
    emulator = AutomoxEmulator(steps=1)
    await emulator.start()
    group = emulator.add_group("endpoints")
    for name in ENDPOINTS:
        emulator.add_device(
            name,
            installed=dict(PACKAGES),
            available={"openssl": "3.0.13-1", "demo-app": "1.1"},
            severity={"openssl": "critical"},
            cves={"openssl": [CVE]},
            group=group,
        )
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment="Server")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with slack_emulator(token=TOKEN) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def fleet(
    db: Database,
    sat: SatelliteEmulator,
    amx: AutomoxEmulator,
    jira: JiraEmulator,
    slack: SlackEmulator,
    tmp_path: Path,
) -> AsyncIterator[Bot]:
    """The real Bolt app on a real port over the fleet rig, and an outbox worker that
    delivers to Slack and Jira."""
    rig = FleetRig(db, sat, amx, tmp_path / "automox")
    plans = tmp_path / "plans"
    plans.mkdir()
    settings = make_settings(  # the tools configured as serve's settings would have them
        plans_dir=plans,
        satellite_url=sat.url,
        satellite_user="admin",
        satellite_password=sat.password,
        automox_api_key=amx.key,
        automox_org=amx.org,
        automox_url=amx.url,
        automox_journal_dir=tmp_path / "automox",
    )
    deps = make_deps(settings, db, rig, slack)
    bolt = build_bolt_app(deps, signing_secret=SECRET, token=TOKEN)
    app = build_web_app(
        ServerDeps(db=db, leadership=StubLeadership(), metrics=Metrics(), slack=bolt)
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ticketer = JiraTicketer(
        JiraConfig(url=jira.url, token=jira.token, project="OPS", timeout=5, search_settle=0.0)
    )
    worker = OutboxWorker(
        db,
        {
            TOPIC: SlackDeliverer(deps.client, oncall_channel=ONCALL, oncall_group="S0ONCALL"),
            "ticket": ticketer,
        },
        clock=rig.clock.now,
        owner="e2e",
        base_backoff=0.01,
        max_backoff=0.01,
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield Bot(f"http://127.0.0.1:{port}/slack/events", rig, deps, session, worker)
    finally:
        ticketer.close()
        await rig.close()
        await runner.cleanup()


def checked_in_now(sat: SatelliteEmulator) -> None:
    """Every Satellite host checked in a moment ago (the status check's staleness rule
    reads the real clock)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    for host in sat.hosts.values():
        host.last_checkin = stamp
