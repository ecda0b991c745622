"""End to end over both fleet tools (issue 20): one rollout whose first ring is patched by
Satellite (the Foreman + Katello emulator) and whose second ring, behind an approval
gate, by Automox (the console API emulator), through the real engine, the real tool
clients over HTTP, the real Bolt app (the approval is a signed click from the Slack
emulator), the outbox with the real ``slack_sdk`` and ``jira`` clients against their
emulators. A host Satellite fails gets a Jira ticket (named in the rollout's thread);
the audit trail names each tool and the job ids it gave. And `/patch emergency CVE-…`
finds the hosts by what the tools reported pending on them. On SQLite and PostgreSQL.

Not here: an on-call alert. The engine pages on-call when a ring's automatic rollback
starts; neither tool can roll back (plans over them say ``rollback: none``), so a
failure within the budget is a ticket and a thread note, one beyond it fails the
rollout in its thread."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web
from pydantic import SecretStr
from ruamel.yaml import YAML

from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.slack.app import build_bolt_app
from bot.slack.approvals.ids import GateAction
from integrations.backends import build_backends
from integrations.backends.automox import AutomoxBackend, AutomoxClient
from integrations.backends.satellite import SatelliteBackend, SatelliteClient
from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer
from tests.enginekit import APPROVER_1, APPROVER_2, REQUESTER, Rig, make_plan, plan_dict
from tests.fakes.automox_api import AutomoxEmulator
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.satellite_api import SatelliteEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.slack.conftest import SECRET, TOKEN, Bot, StubLeadership, make_deps, make_settings
from tests.slack.test_discovery_commands import answer, text_of
from tests.slack.test_rollout_flow import buttons
from workflows import assessment, audit
from workflows.db import Database, read_only
from workflows.engine import Engine, EngineDeps
from workflows.models import BackendJob, Event, HostRun, Rollout
from workflows.notify import TOPIC
from workflows.outbox import OutboxWorker
from workflows.plans import PatchPlan
from workflows.ports import InventoryHost

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
        hosts = [InventoryHost(name=n, groups=frozenset({"rhel"})) for n in RHEL]
        hosts += [InventoryHost(name=n, groups=frozenset({"endpoints"})) for n in ENDPOINTS]
        super().__init__(db, hosts=hosts)
        self.sat_client = SatelliteClient(sat.url, "admin", SecretStr(sat.password))
        self.amx_client = AutomoxClient(SecretStr(amx.key), amx.org, url=amx.url)
        self.satellite = SatelliteBackend(self.sat_client, poll_interval=0.01, launch_settle=0.0)
        self.automox = AutomoxBackend(self.amx_client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None) -> Engine:
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
                job_wait=5.0,
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
            TOPIC: SlackDeliverer(deps.client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL"),
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


def _gate_message(slack: SlackEmulator) -> dict[str, Any]:
    found = [m for m in slack.posted("C0PATCHES") if buttons(m)]
    assert len(found) == 1, found
    return found[0]


async def test_satellite_and_automox_rings_pass_a_slack_gate_ticket_a_failure_and_name_their_jobs(
    db: Database,
    fleet: Bot,
    sat: SatelliteEmulator,
    amx: AutomoxEmulator,
    jira: JiraEmulator,
    slack: SlackEmulator,
) -> None:
    sat.host(FAILING).script = "failed"
    sat.host(FAILING).message = "Error: Unable to find a match: openssl-0:3.0.13-1"
    rig = fleet.rig
    assert isinstance(rig, FleetRig)
    rollout_id = await rig.start(fleet_plan())

    # Ring 1 on Satellite; the gate before ring 2 is asked in Slack.
    await rig.engine().run_until_idle()
    await fleet.deliver()
    assert not amx.posts, "nothing reaches Automox before the gate is approved"
    approve = buttons(_gate_message(slack))[GateAction.APPROVE]

    # Someone not named by the gate is refused; an approver's click passes it.
    await fleet.click(GateAction.APPROVE, approve, user=REQUESTER)
    (refused,) = await slack.wait_for("chat.postEphemeral", 1)
    assert "is not an approver" in refused.params["text"]
    await fleet.click(GateAction.APPROVE, approve, user=APPROVER_1)
    calls = await slack.wait_for("chat.postEphemeral", 2)
    assert "approved" in calls[1].params["text"]

    await rig.engine().run_until_idle()
    await fleet.deliver()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "succeeded_with_failures", rollout.reason
    async with read_only(db) as session:
        runs = {
            r.host_name: r
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
        jobs = list(
            await session.scalars(
                sa.select(BackendJob)
                .where(BackendJob.rollout_id == rollout_id, BackendJob.action == "apply")
                .order_by(BackendJob.id)
            )
        )
        submitted = list(
            await session.scalars(
                sa.select(Event)
                .where(Event.rollout_id == rollout_id, Event.kind == "backend.job.submitted")
                .order_by(Event.id)
            )
        )
        approvals = list(
            await session.scalars(
                sa.select(Event).where(Event.rollout_id == rollout_id, Event.kind.like("gate.%"))
            )
        )

    # Each tool patched its own hosts, to the pinned versions.
    assert {n: (runs[n].backend, runs[n].state) for n in runs} == {
        "rhel-01": ("satellite", "healthy"),
        "rhel-02": ("satellite", "failed"),
        "ep-01": ("automox", "healthy"),
        "ep-02": ("automox", "healthy"),
    }
    assert sat.host("rhel-01").packages["openssl"] == "3.0.13-1"
    for name in ENDPOINTS:
        assert amx.by_name(name).installed["openssl"] == "3.0.13-1"
    assert "Unable to find a match" in (runs[FAILING].output_tail or "")
    assert any(e.actor == APPROVER_1 for e in approvals), [e.kind for e in approvals]

    # The failing host got one Jira ticket, created through the API.
    assert len(jira.issues) == 1, list(jira.issues)
    (issue,) = jira.issues.values()
    assert f"pg-host-{FAILING}" in issue.labels
    assert runs[FAILING].ticket_id is not None
    # ... and the rollout's Slack thread names the host and its ticket.
    told = [m["text"] for m in slack.posted("C0PATCHES") if m["thread_ts"]]
    assert any(t.startswith(f"{FAILING}: patch-failed") and issue.key in t for t in told), told

    # Evidence: the audit trail names each tool and the job id the tool gave.
    assert [(j.backend, j.state) for j in jobs] == [("satellite", "done"), ("automox", "done")]
    sat_ids = {str(i) for i in sat.invocations}
    bodies = [json.loads(e.body)["data"] for e in submitted]
    named = [(b["backend"], b["job_id"], sorted(b["hosts"])) for b in bodies]
    assert [(b, h) for b, _, h in named] == [
        ("satellite", list(RHEL)),
        ("automox", list(ENDPOINTS)),
    ]
    assert named[0][1] in sat_ids and named[0][1] == jobs[0].job_id
    assert named[1][1] == jobs[1].job_id  # Automox's job: the key its commands carry
    result = await audit.verify_database(db)
    assert result.count > 0


async def test_emergency_for_a_cve_finds_the_hosts_the_tools_reported_it_on(
    db: Database, fleet: Bot, sat: SatelliteEmulator, slack: SlackEmulator
) -> None:
    """Item 3: the stored assessments of tool-assessed hosts carry the tools' CVEs
    (Satellite's errata, Automox's pending updates), and `/patch emergency` finds them."""
    sat.host(FAILING).script = "failed"
    urgent = plan_dict(name="urgent", emergency={"batch": 1, "approvers": {"users": [APPROVER_2]}})
    urgent.update(FLEET)
    YAML().dump(urgent, fleet.deps.settings.plans_dir / "urgent.yml")
    rig = fleet.rig
    # The weekly rollout's refresh assesses every host through its tool; Satellite's
    # ring fails on rhel-02 and the Automox ring waits at its gate, unpatched.
    weekly = await rig.start(fleet_plan())
    await rig.engine().run_until_idle()
    await fleet.deliver()
    assert await rig.open_gate(weekly) is not None
    async with read_only(db) as session:
        latest = await assessment.latest(session)
    for name in (*RHEL, *ENDPOINTS):
        assert any(CVE in f.cves for f in latest[name][1]), (name, latest[name])

    status, body = await fleet.command(f"emergency {CVE.lower()} --plan urgent", user=REQUESTER)
    assert status == 200 and f"Finding the hosts affected by {CVE}" in body, body
    text = text_of(await answer(slack, 1))
    async with read_only(db) as session:
        emergency = await session.scalar(sa.select(Rollout).where(Rollout.emergency.is_(True)))
    assert emergency is not None, text
    assert f"Emergency rollout #{emergency.id} of `urgent` for {CVE}" in text
    # Every host the tools reported it on (rhel-01 too: patched since, but the stored
    # assessment is the refresh's until the next one, as for SSH hosts).
    assert "4 host(s) (`ep-01`, `ep-02`, `rhel-01`, `rhel-02`), packages `openssl`" in text
    plan = PatchPlan.model_validate(emergency.plan_snapshot)

    assert plan.packages.include == ["openssl"]
    assert [(r.name, r.backend) for r in plan.rings] == [
        ("rhel", "satellite"),
        ("endpoints", "automox"),
    ]
