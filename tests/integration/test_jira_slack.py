"""Jira keys and exceptions in Slack: the engine, the outbox worker, the real ``slack_sdk``
client against the Slack emulator and the real ``jira`` client against the Jira emulator,
on SQLite and PostgreSQL.

A rollback alert is updated with the Jira keys once they are known. Alert first (Jira down, the
key comes late): the posted alert is updated in place. Ticket first (Slack down while
Jira answers): the alert is posted with the keys, and not updated again. The rollout's
summary lists what exceptions left out, with owner, reason, expiry and ticket.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import sqlalchemy as sa

from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer, make_client, messages
from tests.enginekit import OPERATORS, REQUESTER, Rig, make_plan
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows import exceptions
from workflows.db import Database, read_only, unit_of_work
from workflows.engine import Engine
from workflows.gates import Actor
from workflows.models import HostException, OutboxItem
from workflows.notify import RollbackAlert, RolloutSummary
from workflows.outbox import OutboxWorker
from workflows.ports import InventoryHost

TOKEN = "xoxb-test-token"
# Both dev hosts in one batch, no failure allowed: one failed apply rolls the ring back.
RINGS = [{"name": "dev", "hosts": "group:dev", "batch": 2, "failure_budget": 0}]
HOSTS = [InventoryHost(name=f"dev-{i:02d}", groups=frozenset({"dev"})) for i in (1, 2)]


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


class Stack:
    """Engine, worker, Jira and Slack deliverers; restartable (the memory is the DB)."""

    def __init__(self, db: Database, jira: JiraEmulator, slack: SlackEmulator) -> None:
        self.db, self.jira, self.slack = db, jira, slack
        self.rig = Rig(db, hosts=HOSTS)
        self.restart()

    def restart(self) -> None:
        ticketer = JiraTicketer(
            JiraConfig(url=self.jira.url, token=self.jira.token, project="OPS", timeout=5)
        )
        client = make_client(token=TOKEN, base_url=self.slack.url, timeout=1)
        self.engine: Engine = self.rig.engine()
        self.worker = OutboxWorker(
            self.db,
            {
                "ticket": ticketer,
                "notify": SlackDeliverer(
                    client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL"
                ),
            },
            clock=self.rig.clock.now,
            owner="worker",
            base_backoff=1,
            max_backoff=30,
        )

    async def settle(self, rounds: int = 4) -> None:
        """Run engine and worker until nothing is left, letting retry delays pass."""
        for _ in range(rounds):
            for _ in range(12):
                await self.engine.run_until_idle()
                if await self.worker.run_once() == 0:
                    break
            self.rig.clock.advance(dt.timedelta(minutes=2))

    def alert(self) -> dict[str, Any]:
        (alert,) = self.slack.posted("C0ONCALL")
        return alert

    def alert_updates(self, ts: str) -> list[dict[str, Any]]:
        return [c.params for c in self.slack.called("chat.update") if c.params.get("ts") == ts]

    async def outbox(self) -> dict[str, str]:
        async with read_only(self.db) as session:
            rows = await session.execute(sa.select(OutboxItem.key, OutboxItem.state))
            return dict(rows.all())


def ticket_keys(jira: JiraEmulator) -> dict[str, str]:
    """host -> Jira key of the issues PatchGate made."""
    out = {}
    for issue in jira.issues.values():
        host = next(x for x in issue.labels if x.startswith("pg-host-"))
        out[host.removeprefix("pg-host-")] = issue.key
    return out


async def test_a_posted_alert_is_updated_with_the_keys_once_jira_comes_back(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    stack.rig.executor.fail("dev-01", "apply")
    await jira.stop()
    rollout_id = await stack.rig.start(make_plan(rings=RINGS))
    await stack.settle()
    assert (await stack.rig.rollout(rollout_id)).state == "rolled_back"

    alert = stack.alert()  # posted while Jira was down: no key yet
    assert "dev-01" in alert["text"] and "OPS-" not in json.dumps(alert["blocks"])
    assert stack.alert_updates(alert["ts"]) == []

    stack.restart()  # PatchGate restarts while Jira is still down
    await stack.settle()
    assert jira.issues == {}
    await jira.start()
    await stack.settle()

    keys = ticket_keys(jira)
    assert set(keys) == {"dev-01", "dev-02"}  # patch failed; rolled back with its ring
    shown = slack.message("C0ONCALL", alert["ts"])
    assert shown is not None and shown["updates"] >= 1
    blocks = json.dumps(shown["blocks"])
    for host, key in keys.items():
        assert f"<{jira.url}/browse/{key}|{key}> {host}" in blocks
        assert key in shown["text"]
    assert "<!subteam^S0ONCALL>" in shown["text"]  # still the alert it was
    assert "/archives/C0PATCHES/p" in blocks  # the thread link survives the update
    assert len(slack.posted("C0ONCALL")) == 1  # updated, never posted again
    thread = [m for m in slack.posted("C0PATCHES") if m["thread_ts"]]
    for host, key in keys.items():  # and each key is posted, linked, in the rollout thread
        assert any(
            m["text"].startswith(f"{host}: ") and f"<{jira.url}/browse/{key}|{key}>" in m["text"]
            for m in thread
        )
    assert set((await stack.outbox()).values()) == {"delivered"}


async def test_an_alert_posted_after_the_tickets_carries_their_keys_and_is_not_updated(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    stack.rig.executor.fail("dev-01", "apply")
    slack.fail("503", times=10_000, methods=["chat.postMessage"])  # Slack down, Jira up
    rollout_id = await stack.rig.start(make_plan(rings=RINGS))
    await stack.settle()
    assert (await stack.rig.rollout(rollout_id)).state == "rolled_back"
    assert set(ticket_keys(jira)) == {"dev-01", "dev-02"}
    assert slack.posted("C0ONCALL") == []

    slack.failures.clear()  # Slack is back
    await stack.settle()

    alert = stack.alert()
    for host, key in ticket_keys(jira).items():
        assert f"|{key}> {host}" in json.dumps(alert["blocks"])
        assert key in alert["text"]
    assert stack.alert_updates(alert["ts"]) == []
    rows = await stack.outbox()
    assert not [k for k in rows if ":tickets:" in k]
    assert set(rows.values()) == {"delivered"}


async def test_keys_learned_one_at_a_time_update_the_alert_each_time_and_only_then(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    stack.rig.executor.fail("dev-01", "apply")
    # The first create fails for a while (5xx), so dev-01's key comes after dev-02's.
    jira.fail_next(503, times=3, path="issue")
    rollout_id = await stack.rig.start(make_plan(rings=RINGS))
    await stack.settle(rounds=8)
    assert (await stack.rig.rollout(rollout_id)).state == "rolled_back"

    alert = stack.alert()
    shown = slack.message("C0ONCALL", alert["ts"])
    assert shown is not None
    keys = ticket_keys(jira)
    for key in keys.values():
        assert key in shown["text"]
    rows = await stack.outbox()
    updates = sorted(k for k in rows if ":tickets:" in k)
    # one update per new key learned after the post, none repeated
    assert shown["updates"] >= 1
    assert len(updates) == shown["updates"] == len(set(updates))
    await stack.settle()
    assert len(stack.alert_updates(alert["ts"])) == shown["updates"]


async def grant(
    stack: Stack, host: str, *, owner: str, reason: str, days: int, package: str | None = None
) -> HostException:
    now = stack.rig.clock.now()
    async with unit_of_work(stack.db) as session:
        granted = await exceptions.grant(
            session,
            actor=Actor(REQUESTER),
            operators=OPERATORS,
            host=host,
            package=package,
            owner=owner,
            reason=reason,
            expires_at=now + dt.timedelta(days=days),
            now=now,
            max_days=30,
        )
    assert isinstance(granted, HostException)
    return granted


async def test_the_summary_lists_hosts_and_packages_left_out_with_owner_reason_expiry_and_ticket(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    host = await grant(
        stack, "dev-01", owner="U0OWNER1", reason="vendor app pins openssl until Q2", days=7
    )
    held = await grant(
        stack,
        "dev-02",
        owner="U0OWNER2",
        reason="waits for the FIPS build",
        days=3,
        package="openssl",
    )
    await stack.settle()  # the exceptions' tickets are filed and their keys learned
    rollout_id = await stack.rig.start(make_plan(rings=RINGS))
    await stack.settle()

    assert await stack.rig.host_states(rollout_id) == {"dev-01": "excepted", "dev-02": "healthy"}
    assert stack.rig.executor.installed_on("dev-02")["openssl"] == "3.0.11-1"  # held back
    keys = {i.fields["description"].split(":")[0]: i.key for i in jira.issues.values()}
    host_key, held_key = keys[f"Exception #{host.id}"], keys[f"Exception #{held.id}"]
    (summary,) = [
        m for m in slack.posted("C0PATCHES") if "Left out by exceptions" in json.dumps(m["blocks"])
    ]
    assert summary["thread_ts"] is not None  # in the rollout's thread
    text = "\n".join(str(b.get("text", {}).get("text", "")) for b in summary["blocks"])
    assert "*Left out by exceptions*: 1 host, 1 package held" in text
    assert (
        f"`dev-01` (whole host): exception #{host.id}, owner <@U0OWNER1>, until 2026-01-11, "
        f"{host_key}: vendor app pins openssl until Q2"
    ) in text
    assert (
        f"`dev-02` package `openssl`: exception #{held.id}, owner <@U0OWNER2>, until "
        f"2026-01-07, {held_key}: waits for the FIPS build"
    ) in text


async def test_a_summary_without_exceptions_says_nothing_about_them(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    await grant(stack, "dev-09", owner="U0OWNER1", reason="not in this plan", days=7)
    rollout_id = await stack.rig.start(make_plan(rings=RINGS))
    await stack.settle()
    assert (await stack.rig.rollout(rollout_id)).state == "succeeded"
    blocks = json.dumps([m["blocks"] for m in slack.posted("C0PATCHES")])
    assert "Left out by exceptions" not in blocks and "excepted*: 0" in blocks


def test_hundreds_of_exceptions_and_tickets_stay_inside_block_kits_limits() -> None:
    items = [
        {
            "host": f"web-{i:03d}",
            "package": "openssl" if i % 2 else None,
            "exception_id": i,
            "cve": None,
            "owner": "U0OWNER1",
            "reason": "x" * 500,
            "expires_at": "2026-02-01T00:00:00+00:00",
            "ticket_key": f"OPS-{i}",
        }
        for i in range(500)
    ]
    message = messages.summary(
        RolloutSummary.model_validate(
            {"text": "Rollout #1 succeeded", "summary": {"counts": {}, "exceptions": items}}
        )
    )
    (section,) = [b for b in message["blocks"] if "Left out" in b["text"]["text"]]
    assert len(section["text"]["text"]) <= messages.SECTION_LIMIT
    assert "250 hosts, 250 packages held" in section["text"]["text"]
    assert "more (`patchgate exception list`)" in section["text"]["text"]
    tickets = [{"host": f"web-{i:03d}", "key": f"OPS-{i}", "url": None} for i in range(500)]
    alert = messages.alert(
        RollbackAlert.model_validate({"text": "rolled back", "rollout_id": 1, "tickets": tickets}),
        group=None,
        link=None,
    )
    assert len(alert["blocks"]) <= messages.MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= messages.SECTION_LIMIT for b in alert["blocks"])
    assert "and 480 more" in json.dumps(alert["blocks"])


async def test_a_failed_rollouts_final_note_lists_the_exceptions_too(
    db: Database, jira: JiraEmulator, slack: SlackEmulator
) -> None:
    stack = Stack(db, jira, slack)
    held = await grant(
        stack,
        "dev-02",
        owner="U0OWNER2",
        reason="waits for the FIPS build",
        days=3,
        package="openssl",
    )
    stack.rig.executor.fail("dev-01", "apply")
    plan = make_plan(rings=RINGS, rollback={"ring_on_budget_exceeded": False})
    rollout_id = await stack.rig.start(plan)
    await stack.settle()
    assert (await stack.rig.rollout(rollout_id)).state == "failed"
    (final,) = [m for m in slack.posted("C0PATCHES") if "failed: failure budget" in m["text"]]
    text = json.dumps(final["blocks"])
    assert f"`dev-02` package `openssl`: exception #{held.id}, owner <@U0OWNER2>" in text
