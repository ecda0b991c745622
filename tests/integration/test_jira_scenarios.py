"""Ticket scenarios end to end: the engine, the outbox worker and the real ``jira`` client
against the Jira REST emulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa

from integrations.jira import JiraConfig, JiraTicketer
from integrations.testing.deliverers import RecordingDeliverer
from tests.enginekit import OPERATORS, REQUESTER, Rig, make_plan
from tests.fakes.jira_api import JiraEmulator
from workflows import assessment, exceptions
from workflows.db import Database, read_only, unit_of_work
from workflows.engine import Engine
from workflows.gates import Actor
from workflows.models import HostException, HostRun, OutboxItem, Ticket
from workflows.notify import notification_kind, parse_notification
from workflows.outbox import OutboxWorker
from workflows.ports import InventoryHost

RINGS = [{"name": "dev", "hosts": "group:dev", "batch": 1, "failure_budget": 1}]
HOSTS = [InventoryHost(name=f"dev-{i:02d}", groups=frozenset({"dev"})) for i in (1, 2)]


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment="Server")
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


class Stack:
    """A rig plus the Jira deliverer and a recording Slack stand-in, restartable."""

    def __init__(
        self, db: Database, jira: JiraEmulator, *, risk_thresholds: tuple[int, ...] = ()
    ) -> None:
        self.db, self.jira, self.risk_thresholds = db, jira, risk_thresholds
        self.rig = Rig(db, hosts=HOSTS)
        self.notes = RecordingDeliverer()
        self.restart()

    def restart(self) -> None:
        """A new PatchGate process: new engine, ticketer and worker (memory is the DB)."""
        self.ticketer = JiraTicketer(
            JiraConfig(
                url=self.jira.url,
                token=self.jira.token,
                user=self.jira.user,  # Cloud: e-mail + API token; Server: a PAT
                project="OPS",
                search_settle=0.3,
                timeout=5,
                priorities={
                    "critical": "Highest",
                    "high": "High",
                    "medium": "Medium",
                    "low": "Low",
                },
                risk_thresholds=self.risk_thresholds,
            )
        )
        self.engine: Engine = self.rig.engine()
        self.worker = OutboxWorker(
            self.db,
            {"ticket": self.ticketer, "notify": self.notes},
            clock=self.rig.clock.now,
            owner="worker",
            base_backoff=1,
            max_backoff=30,
        )

    async def settle(self) -> None:
        for _ in range(12):
            await self.engine.run_until_idle()
            if await self.worker.run_once() == 0:
                return
        raise AssertionError("outbox never settled")

    async def rollout(self) -> int:
        rollout_id = await self.rig.start(make_plan(rings=RINGS))
        await self.settle()
        return rollout_id

    async def run(self, rollout_id: int, host: str) -> HostRun:
        async with read_only(self.db) as session:
            run = await session.scalar(
                sa.select(HostRun).where(
                    HostRun.rollout_id == rollout_id, HostRun.host_name == host
                )
            )
        assert run is not None
        return run

    def texts(self) -> list[str]:
        return [str(d.payload.get("text")) for d in self.notes.delivered]


async def test_failed_health_check_opens_a_ticket_whose_key_is_on_the_run_and_in_the_thread(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    rollout_id = await stack.rollout()

    assert [i.key for i in jira.issues.values()] == ["OPS-1"]
    issue = jira.issues["OPS-1"]
    assert issue.fields["summary"] == (
        "[PatchGate] dev-01: health check failed after demo-app 1.1 (+1 more)"
    )
    assert f"Rollout: #{rollout_id} (plan weekly)" in issue.fields["description"]
    assert "- openssl: 3.0.11-1 -> 3.0.13-1" in issue.fields["description"]
    assert {"patchgate", "pg-host-dev-01", "pg-cause-health-failed"} <= set(issue.labels)
    assert issue.fields["priority"] == {"name": "High"}
    assert "Automatic rollback of dev-01 done" in issue.comments[0]["body"]
    assert (await stack.run(rollout_id, "dev-01")).ticket_key == "OPS-1"
    assert (await stack.run(rollout_id, "dev-02")).ticket_key is None
    assert any("OPS-1" in t and "dev-01" in t for t in stack.texts())


async def test_a_repeat_failure_comments_on_the_open_ticket_instead_of_opening_another(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    await stack.rollout()
    second = await stack.rollout()

    assert list(jira.issues) == ["OPS-1"]
    bodies = [c["body"] for c in jira.issues["OPS-1"].comments]
    assert sum("PatchGate saw this again" in b for b in bodies) == 1
    assert (await stack.run(second, "dev-01")).ticket_key == "OPS-1"
    assert any("added to OPS-1" in t for t in stack.texts())


async def test_a_fix_resolves_the_ticket_through_the_configured_transition(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    await stack.rollout()
    stack.rig.executor.heal("dev-01")
    await stack.rollout()

    issue = jira.issues["OPS-1"]
    assert issue.status == "Done"
    assert "Fixed: rollout" in issue.comments[-1]["body"]
    assert any("OPS-1 moved to Done" in t for t in stack.texts())
    async with read_only(db) as session:
        assert (await session.scalar(sa.select(Ticket.state))) == "resolved"


async def test_a_workflow_without_the_transition_gets_a_comment_and_a_note_in_slack(
    db: Database, jira: JiraEmulator
) -> None:
    jira.transitions = [t for t in jira.transitions if t["name"] != "Done"]
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    await stack.rollout()
    stack.rig.executor.heal("dev-01")
    await stack.rollout()

    issue = jira.issues["OPS-1"]
    assert issue.status == "To Do"
    assert "Fixed: rollout" in issue.comments[-1]["body"]
    assert any("no transition named 'Done'" in t for t in stack.texts())
    async with read_only(db) as session:
        dead = await session.scalar(
            sa.select(sa.func.count()).select_from(OutboxItem).where(OutboxItem.state == "dead")
        )
    assert dead == 0


async def test_jira_down_across_a_restart_gives_exactly_one_ticket_per_cause(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    stack.rig.executor.fail("dev-02", "apply")
    await jira.stop()
    first = await stack.rollout()  # rollouts carry on while Jira is down
    # Two failures exceed the ring's budget of one: the rollout ran to its end anyway.
    assert (await stack.rig.rollout(first)).state == "rolled_back"

    stack.restart()  # PatchGate restarts; Jira is still down
    stack.rig.clock.advance(dt.timedelta(minutes=5))
    await stack.rollout()
    async with read_only(db) as session:
        errors = list(
            await session.scalars(
                sa.select(OutboxItem.last_error).where(OutboxItem.topic == "ticket")
            )
        )
    assert any(e and "ConnectionError" in e for e in errors)

    await jira.start()
    for _ in range(4):
        stack.rig.clock.advance(dt.timedelta(minutes=10))
        await stack.settle()
    causes = sorted(
        next(x for x in i.labels if x.startswith("pg-cause-")) for i in jira.issues.values()
    )
    assert causes == ["pg-cause-health-failed", "pg-cause-patch-failed"]
    for issue in jira.issues.values():
        assert any("PatchGate saw this again" in c["body"] for c in issue.comments)


async def test_a_ticket_created_whose_answer_was_lost_is_not_created_twice(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    jira.lose_create_responses(1)
    rollout_id = await stack.rollout()
    assert len(jira.issues) == 1  # created, but PatchGate did not hear back
    stack.rig.clock.advance(dt.timedelta(minutes=5))
    await stack.settle()

    assert list(jira.issues) == ["OPS-1"]
    assert (await stack.run(rollout_id, "dev-01")).ticket_key == "OPS-1"


async def test_an_exception_is_ticketed_skips_the_host_and_lapses_at_expiry(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    now = stack.rig.clock.now()
    async with unit_of_work(db) as session:
        granted = await exceptions.grant(
            session,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            host="dev-01",
            owner="U0OWNER1",
            reason="vendor app pins openssl until Q2",
            expires_at=now + dt.timedelta(days=7),
            now=now,
            max_days=30,
            channel="C0PATCHES",
        )
    assert isinstance(granted, HostException)
    first = await stack.rollout()
    assert (await stack.rig.host_states(first))["dev-01"] == "excepted"
    issue = jira.issues["OPS-1"]
    assert "pg-cause-exception" in issue.labels
    assert "vendor app pins openssl" in issue.fields["description"]
    async with read_only(db) as session:
        assert [e.ticket_key for e in await exceptions.list_active(session, now=now)] == ["OPS-1"]

    stack.rig.clock.advance(dt.timedelta(days=7, seconds=1))
    await stack.settle()
    async with read_only(db) as session:
        assert list(await exceptions.list_active(session, now=stack.rig.clock.now())) == []
    assert "expired" in issue.comments[-1]["body"]
    lapsed = [
        d
        for d in stack.notes.delivered
        if notification_kind(parse_notification(d.payload)) == "exception.lapsed"
    ]
    assert len(lapsed) == 1 and lapsed[0].payload["channel"] == "C0PATCHES"
    later = await stack.rollout()
    assert (await stack.rig.host_states(later))["dev-01"] == "healthy"


def finding(host: str, *, risk: int, reasons: tuple[str, ...] = ()) -> assessment.Finding:
    return assessment.Finding(
        host=host,
        package="openssl",
        current="3.0.11-1",
        candidate="3.0.13-1",
        advisories=("DSA-5555-1",),
        cves=("CVE-2026-0001",),
        severity="critical",
        cvss=9.8,
        known_exploited=True,
        published=None,
        security=True,
        risk=risk,
        reasons=reasons,
    )


async def test_the_hosts_risk_score_raises_the_ticket_priority_by_the_configured_rule(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira, risk_thresholds=(70, 90))
    async with unit_of_work(db) as session:
        await assessment.store(
            session,
            host="dev-01",
            findings=[
                finding("dev-01", risk=75, reasons=("CVSS 9.8: +49", "known exploited: +25"))
            ],
            at=stack.rig.clock.now(),
        )
    stack.rig.executor.fail("dev-01", "health", "unhealthy")  # health-failed: high
    stack.rig.executor.fail("dev-02", "apply")  # patch-failed: high; assessed by the refresh
    await stack.rollout()

    by_host = {
        next(x for x in i.labels if x.startswith("pg-host-")): i for i in jira.issues.values()
    }
    risky, unassessed = by_host["pg-host-dev-01"], by_host["pg-host-dev-02"]
    assert risky.fields["priority"] == {"name": "Highest"}  # high, one threshold reached
    assert (
        "Risk score: 75 (openssl), assessed 2026-01-04: CVSS 9.8: +49"
        in (risky.fields["description"])
    )
    assert (
        "Priority: Highest (severity high, raised 1 level: risk score 75 reached 70)"
        in (risky.fields["description"])
    )
    assert "Advisories: DSA-5555-1, CVE-2026-0001" in risky.fields["description"]
    # the rollout's own refresh scored it below the thresholds: the cause decides
    assert unassessed.fields["priority"] == {"name": "High"}
    assert "Risk score: 10 (openssl)" in unassessed.fields["description"]


async def test_without_thresholds_the_risk_score_is_shown_but_changes_no_priority(
    db: Database, jira: JiraEmulator
) -> None:
    stack = Stack(db, jira)
    async with unit_of_work(db) as session:
        await assessment.store(
            session, host="dev-01", findings=[finding("dev-01", risk=99)], at=stack.rig.clock.now()
        )
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    await stack.rollout()
    (issue,) = jira.issues.values()
    assert issue.fields["priority"] == {"name": "High"}
    assert "Risk score: 99" in issue.fields["description"]
    assert "Priority:" not in issue.fields["description"]


@pytest_asyncio.fixture
async def cloud() -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment="Cloud", search_lag=0.1)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.mark.parametrize("lose_answer", [False, True])
async def test_on_jira_cloud_an_outage_and_a_lost_answer_still_give_one_ticket_per_cause(
    db: Database, cloud: JiraEmulator, lose_answer: bool
) -> None:
    """Cloud: basic auth with the e-mail, search/jql with nextPageToken, and a search index
    that lags behind a create (the retry searches again after search_settle)."""
    stack = Stack(db, cloud)
    stack.rig.executor.fail("dev-01", "health", "unhealthy")
    stack.rig.executor.fail("dev-02", "apply")
    await cloud.stop()
    await stack.rollout()
    stack.restart()
    await cloud.start()
    if lose_answer:
        cloud.lose_create_responses(2)
    for _ in range(4):
        stack.rig.clock.advance(dt.timedelta(minutes=10))
        await stack.settle()
    causes = sorted(
        next(x for x in i.labels if x.startswith("pg-cause-")) for i in cloud.issues.values()
    )
    assert causes == ["pg-cause-health-failed", "pg-cause-patch-failed"]
    assert any(path == "search/jql" for _, path in cloud.calls)
    assert cloud._lose_creates == 0  # the lost answers, if any, were all exercised
    async with read_only(db) as session:
        keys = sorted(str(k) for k in await session.scalars(sa.select(Ticket.key)))
    assert keys == sorted(i.key for i in cloud.issues.values())
