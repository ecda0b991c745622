"""End to end over both fleet tools (issue 20): one rollout whose first ring is patched by
Satellite (the Foreman + Katello emulator) and whose second ring, behind an approval
gate, by Automox (the console API emulator), through the real engine, the real tool
clients over HTTP, the real Bolt app (the approval is a signed click from the Slack
emulator), the outbox with the real ``slack_sdk`` and ``jira`` clients against their
emulators. A host Satellite fails gets a Jira ticket (named in the rollout's thread);
the audit trail names each tool and the job ids it gave. And `/patch emergency CVE-…`
finds the hosts by what the tools reported pending on them. On SQLite and PostgreSQL.

Also here (issue 20's health and on-call items): a ``tool`` health check (Satellite's
own status of a host) that fails one host, which is then unhealthy with a ticket; the
on-call alert for a host left broken by a tool that cannot roll back (one per batch and
tool, in the on-call channel of the Slack emulator, naming the hosts, the tool and its
job); and a halt: a budget spent by an Automox device cancels the Satellite job
invocation of the same batch while its task still runs."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.approvals.ids import GateAction
from tests.enginekit import APPROVER_1, APPROVER_2, REQUESTER, make_plan, plan_dict
from tests.fakes.automox_api import AutomoxEmulator
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.satellite_api import SatelliteEmulator
from tests.fakes.slack_api import SlackEmulator
from tests.fleetkit import (
    CVE,
    ENDPOINTS,
    FAILING,
    FLEET,
    ONCALL,
    RHEL,
    RINGS,
    FleetRig,
    amx,
    checked_in_now,
    fleet,
    fleet_plan,
    jira,
    sat,
    slack,
)
from tests.slack.conftest import Bot
from tests.slack.test_discovery_commands import answer, text_of
from tests.slack.test_rollout_flow import buttons
from workflows import assessment, audit
from workflows.db import Database, read_only
from workflows.models import BackendJob, Event, HostRun, Rollout
from workflows.plans import PatchPlan

FIXTURES = (amx, fleet, jira, sat, slack)  # the rig's, used by name below


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


AGENT = {"name": "agent", "type": "tool", "retries": 1, "interval": "0s"}


async def _oncall(slack: SlackEmulator) -> list[str]:
    return [m["text"] for m in slack.posted(ONCALL)]


async def test_a_host_satellite_calls_unwell_is_unhealthy_ticketed_and_pages_on_call(
    db: Database, fleet: Bot, sat: SatelliteEmulator, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    """Item 5: the tool's own host status as a check kind; item 6: the on-call alert for
    a host left broken by a tool that cannot roll back."""
    checked_in_now(sat)
    sat.host("rhel-01").global_status = 2  # Satellite: Error, after the patch
    rig = fleet.rig
    ring = {**RINGS[0], "health_checks": [AGENT]}
    rollout_id = await rig.start(make_plan(**{**FLEET, "rings": [ring]}))
    await rig.engine().run_until_idle()
    await fleet.deliver()

    assert (await rig.rollout(rollout_id)).state == "succeeded_with_failures"
    async with read_only(db) as session:
        runs = {
            r.host_name: r
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
        (job,) = await session.scalars(sa.select(BackendJob))
    assert runs["rhel-01"].state == "unhealthy"
    assert runs["rhel-01"].error == (
        "health check failed: agent: satellite: Error: Satellite's global status is Error"
    )
    assert runs["rhel-02"].state == "healthy"
    assert {"name": "agent", "ok": True, "detail": "satellite: OK"} in runs["rhel-02"].health
    # Asked once for the batch, then again (retries: 1) for the host not yet well.
    asked = [p for m, p in sat.calls if p.endswith("/status/global")]
    assert sorted(asked) == ["/api/hosts/1/status/global"] * 2 + ["/api/hosts/2/status/global"]

    (issue,) = jira.issues.values()
    assert "pg-host-rhel-01" in issue.labels
    await rig.engine().run_until_idle()  # Jira's key known: the alert is updated with it
    await fleet.deliver()
    (alert,) = await _oncall(slack)  # one page for the batch, in the on-call channel
    assert alert.startswith("<!subteam^S0ONCALL> :rotating_light: Rollout #")
    assert "1 host(s) failed on satellite, which cannot roll back" in alert
    assert "rhel-01 (health check failed: agent: satellite: Error" in alert
    assert f"satellite job {job.job_id} ({job.key})" in alert
    assert issue.key in alert  # the ring's ticket, added in place once Jira answered


async def test_a_spent_budget_halts_the_satellite_job_still_running(
    db: Database,
    fleet: Bot,
    sat: SatelliteEmulator,
    amx: AutomoxEmulator,
    slack: SlackEmulator,
) -> None:
    """Halt: one batch over both tools; an Automox device fails at once, spending the
    budget while Satellite's task still runs: the job invocation is cancelled through
    the API, the audit names it, and on-call is paged once per tool."""
    sat.steps = 10**6  # Satellite's task would run on and on
    amx.fail_device("ep-02", "Error: the update could not be installed")
    rig = fleet.rig
    assert isinstance(rig, FleetRig)
    ring = {"name": "fleet", "hosts": "group:fleet", "batch": 4, "backend": "satellite"}
    rollout_id = await rig.start(make_plan(**{**FLEET, "rings": [ring]}))
    await rig.engine(job_wait=0.2).run_until_idle()
    await fleet.deliver()

    rollout = await rig.rollout(rollout_id)
    assert rollout.state == "failed", rollout.reason
    (invocation,) = sat.invocations.values()
    assert sat.cancelled == [invocation.id] and invocation.reads < sat.steps
    async with read_only(db) as session:
        (halt,) = [
            json.loads(e.body)["data"]
            for e in await session.scalars(sa.select(Event).where(Event.kind == "backend.job.halt"))
        ]
        states = {
            r.host_name: r.state
            for r in await session.scalars(
                sa.select(HostRun).where(HostRun.rollout_id == rollout_id)
            )
        }
    assert (halt["backend"], halt["job_id"], halt["halted"]) == (
        "satellite",
        str(invocation.id),
        True,
    )
    assert halt["reason"].startswith("failure budget exceeded in ring fleet")
    assert states == {"rhel-01": "failed", "rhel-02": "failed", "ep-01": "healthy",
                      "ep-02": "failed"}  # fmt: skip
    alerts = await _oncall(slack)
    assert len(alerts) == 2, alerts  # one per tool, none per host
    assert any("on automox" in a and "ep-02" in a for a in alerts)
    assert any(
        "on satellite" in a and "rhel-01" in a and f"satellite job {invocation.id}" in a
        for a in alerts
    )
