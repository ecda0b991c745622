"""A rollout's Jira change ticket and the votes cast on it (issue 23): the engine, the outbox
worker, the real ``jira`` client against the Jira emulator (Cloud and Server/DC shapes),
the real ``slack_sdk`` client against the Slack emulator (``users.lookupByEmail``), the
webhook route on a real HTTP port, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web

from bot.jira import JiraVotes, VoteRules
from bot.jira.poll import JiraPolling
from bot.jira.webhook import JiraWebhook
from integrations.jira import JiraConfig, JiraTicketer
from integrations.jira_events import JiraPoller
from integrations.slack import SlackDeliverer, SlackDirectory, make_client
from tests.enginekit import APPROVER_1, APPROVER_2, REQUESTER, Rig, make_plan, plan_dict
from tests.fakes.jira_api import DEFAULT_TRANSITIONS, FakeIssue, JiraEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows.db import Database, read_only
from workflows.models import Approval, Event, Gate, JiraEventSeen
from workflows.outbox import OutboxWorker
from workflows.ports import InventoryHost

TOKEN = "xoxb-test-token"
SECRET = "s3cret-webhook-0123456789abcdef"
HOSTS = [
    InventoryHost(name="dev-01", groups=frozenset({"dev"})),
    InventoryHost(name="stg-01", groups=frozenset({"staging"})),
    InventoryHost(name="prod-01", groups=frozenset({"prod"})),
    InventoryHost(name="prod-02", groups=frozenset({"prod"})),
]
TRANSITIONS = [
    *DEFAULT_TRANSITIONS,
    {"id": "41", "name": "Approve", "to": "Approved", "category": "indeterminate"},
    {"id": "51", "name": "Reject", "to": "Rejected", "category": "indeterminate"},
]


def change_plan() -> Any:
    rings = plan_dict()["rings"]
    rings[0]["batch"] = 1
    return make_plan(change={"ticket": True}, rings=rings)


@pytest_asyncio.fixture(params=["Cloud", "Server"])
async def jira(request: pytest.FixtureRequest) -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment=request.param, page_size=50)
    emulator.transitions = [dict(t) for t in TRANSITIONS]
    emulator.transition_in_webhook = request.param == "Server"
    emulator.add_person("alice", email="alice@example.com")  # found in Slack by e-mail
    emulator.add_person("bob", email=None)  # Cloud hides e-mail: mapped explicitly
    emulator.add_person("rita", email="rita@example.com")  # the rollout's requester
    emulator.add_person("mallory", email="mallory@elsewhere.example")  # unknown to Slack
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    emails = {"alice@example.com": APPROVER_1, "rita@example.com": REQUESTER}
    async with slack_emulator(token=TOKEN, emails=emails) as emulator:
        yield emulator


class Stack:
    def __init__(self, db: Database, jira: JiraEmulator, slack: SlackEmulator) -> None:
        self.db, self.jira, self.slack = db, jira, slack
        self.rig = Rig(db, hosts=HOSTS)
        self.engine = self.rig.engine()
        self.ticketer = JiraTicketer(
            JiraConfig(url=jira.url, token=jira.token, user=jira.user, project="OPS", timeout=5)
        )
        client = make_client(token=TOKEN, base_url=slack.url, timeout=2)
        self.worker = OutboxWorker(
            db,
            {
                "ticket": self.ticketer,
                "notify": SlackDeliverer(client, oncall_channel="C0ONCALL", oncall_group=None),
            },
            clock=self.rig.clock.now,
            owner="worker",
            base_backoff=1,
            max_backoff=30,
        )

        async def no_groups() -> frozenset[str]:
            return frozenset()

        bob = jira.people["bob"]
        self.votes = JiraVotes(
            db=db,
            clock=self.rig.clock,
            rules=VoteRules(
                # a transition's name (Server here: a post-function adds it to the
                # webhook) or the status it reaches (Cloud here, and the poll)
                approve_transitions=frozenset({"approve", "approved"}),
                reject_transitions=frozenset({"reject", "rejected"}),
                user_map={bob.account_id.lower(): APPROVER_2, bob.name: APPROVER_2},
            ),
            people=SlackDirectory(client, no_groups),
        )
        self.webhook = JiraWebhook(self.votes, secret=SECRET, max_age=300)
        self.polling = JiraPolling(self.votes, JiraPoller(self.ticketer), interval=30)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def serve(self) -> None:
        app = web.Application()
        self.webhook.register(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/jira/webhook"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.ticketer.close()

    async def settle(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            for _ in range(12):
                await self.engine.run_until_idle()
                if await self.worker.run_once() == 0:
                    break
            self.rig.clock.advance(dt.timedelta(minutes=2))

    def change_issue(self) -> FakeIssue:
        (issue,) = [i for i in self.jira.issues.values() if "pg-cause-change" in i.labels]
        return issue

    def said(self) -> str:
        return "\n".join(c["body"] for c in self.change_issue().comments)

    async def approvals(self) -> list[tuple[str, str, str]]:
        async with read_only(self.db) as session:
            rows = await session.execute(
                sa.select(Approval.user_id, Approval.decision, Approval.source).order_by(
                    Approval.id
                )
            )
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]

    async def refusals(self) -> list[dict[str, Any]]:
        async with read_only(self.db) as session:
            bodies = await session.scalars(
                sa.select(Event.body).where(Event.kind == "gate.refused")
            )
            return [json.loads(b) for b in bodies]


@pytest_asyncio.fixture
async def stack(db: Database, jira: JiraEmulator, slack: SlackEmulator) -> AsyncIterator[Stack]:
    built = Stack(db, jira, slack)
    await built.serve()
    jira.add_webhook(f"{built.url}/{SECRET}")
    try:
        yield built
    finally:
        await built.close()


async def open_gate(stack: Stack, rollout_id: int) -> Gate:
    gate = await stack.rig.open_gate(rollout_id)
    assert gate is not None
    return gate


async def test_a_rollout_tells_its_whole_story_on_one_change_ticket_and_takes_votes_from_jira(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    rollout = await stack.rig.rollout(rollout_id)
    digest = rollout.patchset_hash or ""
    description = issue.fields["description"]
    assert digest in description and "stg-01" in description and "prod-02" in description
    assert "/approve <patch-set hash>" in description  # the configured command, filled in
    gate = await open_gate(stack, rollout_id)
    assert f"/approve {digest[:12]}" in stack.said()  # the gate's opening, with its hash

    # staging: approved in Jira by a comment; alice is found in Slack by her e-mail
    await jira.comment_as(issue.key, "alice", f"/approve {digest[:12]}")
    assert jira.deliveries[-1].status == 200
    assert json.loads(jira.deliveries[-1].answer) == {"counted": 1, "refused": 0}
    assert await stack.approvals() == [(APPROVER_1, "approve", "jira")]
    await stack.settle()
    prod = await open_gate(stack, rollout_id)
    assert prod.id != gate.id and prod.quorum == 2

    # prod: one vote in Slack (mirrored onto the ticket), one by a Jira transition
    await stack.rig.vote(prod, APPROVER_1)
    await stack.settle()
    assert f"{APPROVER_1} voted approve on ring prod in cli" in stack.said()
    await jira.transition_as(issue.key, "bob", "Approve")
    assert json.loads(jira.deliveries[-1].answer) == {"counted": 1, "refused": 0}
    await stack.settle(rounds=4)

    assert (await stack.rig.rollout(rollout_id)).state == "succeeded"
    assert await stack.approvals() == [
        (APPROVER_1, "approve", "jira"),
        (APPROVER_1, "approve", "cli"),
        (APPROVER_2, "approve", "jira"),
    ]
    story = stack.said()
    for line in (
        "ring staging: pending -> patching",
        "gate before ring staging: open -> approved",
        f"{APPROVER_2} voted approve on ring prod in jira",
        "ring prod: verifying -> done",
        "Outcome: the rollout succeeded.",
    ):
        assert line in story, line
    assert stack.change_issue().category == "done"  # resolved with the outcome
    notes = " ".join(m.get("text", "") for m in stack.slack.posted("C0PATCHES"))
    assert f"Change ticket <{jira.url}/browse/{issue.key}|{issue.key}>" in notes


async def test_refused_jira_votes_are_audited_and_answered_on_the_ticket(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    digest = (await stack.rig.rollout(rollout_id)).patchset_hash or ""

    await jira.comment_as(issue.key, "mallory", f"/approve {digest[:12]}")  # unmapped
    await jira.comment_as(issue.key, "alice", "/approve 0000000000ff")  # another patch set
    await jira.comment_as(issue.key, "alice", "/reject")  # a rejection needs a reason
    answers = [json.loads(d.answer) for d in jira.deliveries]
    assert answers == [{"counted": 0, "refused": 1}] * 3
    await stack.settle()

    assert await stack.approvals() == []
    assert (await open_gate(stack, rollout_id)).state == "open"
    said = stack.said()
    mallory = jira.people["mallory"]
    who = mallory.account_id if jira.deployment == "Cloud" else "mallory"
    assert f"The approve by {who} was not counted: Jira user {who} is not mapped" in said
    assert "it is for patch set 0000000000ff" in said
    assert "a rejection needs a reason" in said
    reasons = [e["data"]["reason"] for e in await stack.refusals()]
    assert len(reasons) == 3 and any("not mapped" in r for r in reasons)


async def test_the_requester_may_not_approve_from_jira_either(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    gate = await open_gate(stack, rollout_id)
    await stack.rig.vote(gate, APPROVER_1)
    await stack.settle()
    issue = stack.change_issue()
    await jira.comment_as(issue.key, "rita", "/approve")  # the hash the ticket shows
    await stack.settle()
    assert "the rollout's requester may not approve it" in stack.said()
    assert [a for a in await stack.approvals() if a[0] == REQUESTER] == []


async def test_forged_replayed_and_stale_webhooks_change_nothing(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    digest = (await stack.rig.rollout(rollout_id)).patchset_hash or ""
    jira.webhooks[0].url = f"{stack.url}/not-the-secret-0123456789abcdef"
    await jira.comment_as(issue.key, "alice", f"/approve {digest[:12]}")
    forged = jira.deliveries[-1]
    assert forged.status == 401
    assert await stack.approvals() == []
    async with read_only(stack.db) as session:
        assert list(await session.scalars(sa.select(JiraEventSeen.source))) == []

    # the same body with the right secret (in the header this time) counts once ...
    genuine = await jira.redeliver(
        forged, url=stack.url, headers={"X-PatchGate-Webhook-Secret": SECRET}
    )
    assert genuine.status == 200
    # ... and a replay of it (the same delivery id, or for Server the same body) is refused
    replay = await jira.redeliver(genuine)
    assert replay.status == 409
    assert await stack.approvals() == [(APPROVER_1, "approve", "jira")]

    # a delivery whose Jira timestamp is too old is refused before it is read further
    body = json.loads(genuine.body)
    body["timestamp"] -= 3_600_000
    body["comment"]["id"] = "99999"
    fresh_id = {"X-Atlassian-Webhook-Identifier": "another-delivery"}
    stale = await jira.redeliver(genuine, headers=fresh_id, body=json.dumps(body).encode())
    assert stale.status == 403
    bad = b'{"webhookEvent": "comment_created", "issue": {}}'
    assert (await jira.redeliver(genuine, headers=fresh_id, body=bad)).status == 400
    assert stack.webhook.refused == {
        "bad_secret": 1,
        "replayed": 1,
        "stale": 1,
        "malformed: no issue key": 1,
    }
    assert await stack.approvals() == [(APPROVER_1, "approve", "jira")]


async def test_a_signed_cloud_webhook_is_accepted_and_a_bad_signature_refused(
    stack: Stack, jira: JiraEmulator
) -> None:
    if jira.deployment != "Cloud":
        pytest.skip("X-Hub-Signature is Jira Cloud's")
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    digest = (await stack.rig.rollout(rollout_id)).patchset_hash or ""
    jira.webhooks[0] = type(jira.webhooks[0])(stack.url, secret="wrong-secret-0123456789abc")
    await jira.comment_as(issue.key, "alice", f"/approve {digest[:12]}")
    assert jira.deliveries[-1].status == 401
    jira.webhooks[0] = type(jira.webhooks[0])(stack.url, secret=SECRET)
    await jira.comment_as(issue.key, "alice", f"/approve {digest[:12]}")
    assert jira.deliveries[-1].status == 200
    assert await stack.approvals() == [(APPROVER_1, "approve", "jira")]


async def test_polling_finds_votes_webhooks_missed_and_counts_each_once(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    digest = (await stack.rig.rollout(rollout_id)).patchset_hash or ""
    jira.webhooks.clear()  # Jira cannot reach PatchGate
    await jira.comment_as(issue.key, "alice", f"/approve {digest[:12]}")
    assert await stack.approvals() == []
    assert await stack.polling.poll_once() == 1
    assert await stack.polling.poll_once() == 0  # seen: not counted again
    await stack.settle()
    prod = await open_gate(stack, rollout_id)
    assert prod.quorum == 2

    # a vote both delivered by webhook and polled is counted once
    jira.add_webhook(f"{stack.url}/{SECRET}")
    await jira.transition_as(issue.key, "bob", "Approve")
    assert await stack.polling.poll_once() == 0
    assert await stack.approvals() == [
        (APPROVER_1, "approve", "jira"),
        (APPROVER_2, "approve", "jira"),
    ]


async def test_votes_in_slack_while_jira_is_down_reach_the_ticket_later_and_count_once(
    stack: Stack, jira: JiraEmulator
) -> None:
    rollout_id = await stack.rig.start(change_plan())
    await stack.settle()
    issue = stack.change_issue()
    gate = await open_gate(stack, rollout_id)
    await jira.stop()
    await stack.rig.vote(gate, APPROVER_1)  # the Slack path's decide, as a click does
    await stack.settle()
    assert (await stack.rig.rollout(rollout_id)).state in ("awaiting_approval", "running")
    assert f"{APPROVER_1} voted approve" not in stack.said()
    assert await stack.polling.poll_once() == 0  # Jira down: the poll fails quietly
    await jira.start()
    await stack.settle(rounds=4)
    said = stack.said()
    assert said.count(f"{APPROVER_1} voted approve on ring staging") == 1
    assert await stack.approvals() == [(APPROVER_1, "approve", "cli")]
    # one vote per person, whichever the face: a Slack vote, then the same person in Jira
    prod = await open_gate(stack, rollout_id)
    await stack.rig.vote(prod, APPROVER_1)
    await jira.comment_as(issue.key, "alice", "/approve")
    assert json.loads(jira.deliveries[-1].answer) == {"counted": 0, "refused": 1}
    await stack.settle()
    assert f"{APPROVER_1} has already voted on gate {prod.id}" in stack.said()
    assert await stack.approvals() == [(APPROVER_1, "approve", "cli")] * 2
