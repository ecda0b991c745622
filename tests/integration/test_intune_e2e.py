"""End to end over emulated Windows devices (issue 21, item 5): one rollout of the
month's quality update through Intune / the Windows Update for Business deployment
service (the Graph emulator) in two rings, the second behind an approval gate passed by
a signed Slack click through the real Bolt app; the real engine, the real Graph client
over HTTP, the outbox with the real ``slack_sdk`` and ``jira`` clients against their
emulators. A pilot device whose update fails is ticketed in Jira and named in the
rollout's thread; the pilot's deployment is paused by its own monitoring rule (the
service's failure-rate signal); the audit trail names each deployment id. On SQLite and
PostgreSQL.

Not here: PatchGate pausing a deployment itself (``halt``) when a gate is rejected or a
budget is spent — the engine calls it from its halt path (its own tests); the backend's
pause is proven in tests/integration/test_intune_backend.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from bot.slack.approvals.ids import GateAction
from tests.enginekit import APPROVER_1, APPROVER_2, make_plan
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator
from tests.integration.test_fleet_tools_e2e import _gate_message, jira, slack  # noqa: F401
from tests.intunekit import UPDATE, IntuneRig, in_groups, served
from tests.slack.conftest import make_settings
from tests.slack.test_rollout_flow import buttons
from workflows import audit
from workflows.db import Database, read_only
from workflows.models import BackendJob, Event, HostRun

PILOT = {"win-p1": "10.0.22631.4460", "win-p2": "10.0.22631.4460"}
BROAD = {"win-b1": "10.0.22631.4460", "win-b2": "10.0.19045.5073"}
FAILING = "win-p2"


def windows_plan(ring_id: str) -> Any:
    rings = [
        {"name": "pilot", "hosts": "group:pilot", "batch": 2, "failure_budget": 1},
        {
            "name": "broad",
            "hosts": "group:broad",
            "batch": 2,
            "failure_budget": 0,
            "gate": {
                "type": "approval",
                "approvers": {"users": [APPROVER_1, APPROVER_2]},
                "timeout": "4h",
            },
        },
    ]
    options = {
        "update_ring_id": ring_id,
        "days_until_forced_reboot": 1,
        "monitoring": {"signal": "rollback", "threshold": 50, "action": "pauseDeployment"},
    }
    for ring in rings:
        ring["backend"] = "intune"
    return make_plan(rings=rings, backends={"intune": options}, rollback="none")


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[IntuneGraphEmulator]:
    emulator = IntuneGraphEmulator(steps=1)
    await emulator.start()
    for name, build in {**PILOT, **BROAD}.items():
        emulator.add_device(name, build)
    emulator.add_entry("2026.11 B", UPDATE, severity="critical", cves=["CVE-2026-43451"])
    try:
        yield emulator
    finally:
        await emulator.stop()


async def test_windows_devices_in_two_rings_pass_a_slack_gate_and_a_failed_update_is_ticketed(
    db: Database,
    graph: IntuneGraphEmulator,
    jira: JiraEmulator,  # noqa: F811
    slack: SlackEmulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    graph.by_name(FAILING).fail = "0x800f0922"
    hosts = [*in_groups(PILOT, "pilot"), *in_groups(BROAD, "broad")]
    rig = IntuneRig(db, graph, tmp_path / "intune", hosts)
    settings = make_settings(  # as serve's settings would have them
        intune_tenant_id=graph.tenant,
        intune_client_id=graph.client_id,
        intune_client_secret=graph.client_secret,
        intune_graph_url=graph.url,
        intune_login_url=graph.url,
        intune_journal_dir=tmp_path / "intune",
    )
    try:
        async with served(db, rig, settings, jira, slack) as bot:
            rollout_id = await rig.start(windows_plan(graph.ring_id))

            # The pilot ring's deployment; the gate before the broad ring is asked in Slack.
            await rig.engine().run_until_idle()
            await bot.deliver()
            assert len(graph.deployments) == 1, "nothing reaches the broad ring before the gate"
            approve = buttons(_gate_message(slack))[GateAction.APPROVE]
            await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
            calls = await slack.wait_for("chat.postEphemeral", 1)
            assert "approved" in calls[0].params["text"]
            await rig.engine().run_until_idle()
            await bot.deliver()
    finally:
        await rig.client.close()

    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
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
                .where(BackendJob.rollout_id == rollout_id)
                .order_by(BackendJob.id)
            )
        )
        submitted = [
            json.loads(e.body)["data"]
            for e in await session.scalars(
                sa.select(Event)
                .where(Event.rollout_id == rollout_id, Event.kind == "backend.job.submitted")
                .order_by(Event.id)
            )
        ]

    # Each device at the build of its own Windows, but the failing one.
    assert {n: r.state for n, r in runs.items()} == {
        "win-p1": "healthy",
        "win-p2": "failed",
        "win-b1": "healthy",
        "win-b2": "healthy",
    }
    assert runs["win-b2"].after_versions == {"KB5046613": "10.0.19045.5131"}
    assert graph.by_name(FAILING).build == "10.0.22631.4460"
    assert "Windows Update reports failed" in (runs[FAILING].output_tail or "")

    # The pilot's deployment paused itself on the failure rate (its monitoring rule).
    pilot, broad = sorted(graph.deployments.values(), key=lambda d: d.created)
    assert (pilot.effective, pilot.reasons) == ("paused", ["pausedByMonitoring"])
    assert broad.effective == "offering"
    assert all(
        d.settings["monitoring"]["monitoringRules"][0]["threshold"] == 50
        for d in graph.deployments.values()
    )

    # The failing device got one Jira ticket, and the thread names it with its key.
    (issue,) = jira.issues.values()
    assert f"pg-host-{FAILING}" in issue.labels and runs[FAILING].ticket_id is not None
    told = [m["text"] for m in slack.posted("C0PATCHES") if m["thread_ts"]]
    assert any(t.startswith(f"{FAILING}: patch-failed") and issue.key in t for t in told), told

    # Evidence: the jobs and the audit trail name the deployment ids Graph gave.
    assert [(j.backend, j.job_id) for j in jobs] == [("intune", pilot.id), ("intune", broad.id)]
    assert [(b["backend"], b["job_id"], sorted(b["hosts"])) for b in submitted] == [
        ("intune", pilot.id, sorted(PILOT)),
        ("intune", broad.id, sorted(BROAD)),
    ]
    assert pilot.id in (runs[FAILING].output_tail or "")
    assert (await audit.verify_database(db)).count > 0
