"""People click Approve while Slack is down (issue 9, item 2 with item 3's faces).

Slack's Web API is in an outage (``503``: every call fails at once; ``hang``: every call
is held unanswered until the client's own timeout) while an approver clicks Approve over
HTTP. The click is still acked (200, empty body: it is journaled and decided after the
ack, and neither needs Slack), the decision is recorded exactly once, the ephemeral
"approved" feedback fails and is logged, nothing is raised out of the request. Once Slack
is back the outbox delivers the readiness message's update (``chat.update`` replacing
the buttons) and the thread posts exactly once each, and a sweep of the journal (what a
restarted ``serve`` runs) decides nothing twice.

When the gate's approvers are a Slack user group, who the clicker is cannot be
established during the outage (``usergroups.users.list`` fails): the click is acked,
nothing is decided, the journal row stays for the sweep, which decides it once Slack is
back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.approvals.ids import GateAction
from bot.slack.journal import APPROVE
from tests.enginekit import APPROVER_1, APPROVER_2, REQUESTER, plan_dict
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from tests.slack.test_ack_journal import journal_rows, listeners_done, replica, state
from tests.slack.test_rollout_flow import GROUP, buttons, readiness
from workflows.db import read_only
from workflows.models import OutboxItem, Rollout

# A hang is turned into a failure after this long (a guard, not a timed assertion).
GUARD = 60.0


def plan(bot: Bot, approvers: dict[str, list[str]]) -> None:
    """dev (no gate), then staging behind a quorum-1 approval gate."""
    data = plan_dict()
    data["rings"] = [
        data["rings"][0],
        {
            "name": "staging",
            "hosts": "group:staging",
            "batch": "50%",
            "gate": {"type": "approval", "approvers": approvers, "timeout": "4h"},
        },
    ]
    YAML().dump(data, bot.deps.settings.plans_dir / "weekly.yml")


async def reach_the_gate(bot: Bot, slack_api: SlackEmulator) -> dict[str, Any]:
    status, body = await bot.command("run weekly", user=REQUESTER)
    assert status == 200 and "Rollout #" in body, body
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    return readiness(slack_api)


async def pending(bot: Bot) -> int:
    async with read_only(bot.rig.db) as session:
        states = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
    assert set(states) <= {"pending", "delivered"}, states
    return states.get("pending", 0)


async def deliver_everything(bot: Bot) -> None:
    """Run the outbox until nothing is pending, moving the clock past each backoff."""
    for _ in range(60):
        await bot.deliver()
        if not await pending(bot):
            return
        bot.rig.clock.advance(dt.timedelta(minutes=5))
    raise AssertionError("the outbox never emptied")


async def click(bot: Bot, value: str, *, user: str) -> tuple[int, str]:
    return await asyncio.wait_for(bot.click(GateAction.APPROVE.value, value, user=user), GUARD)


def delivered_once(slack_api: SlackEmulator) -> Counter[str]:
    keys = Counter(
        m["metadata"]["event_payload"]["key"] for m in slack_api.posted() if m["metadata"]
    )
    assert keys and max(keys.values()) == 1, keys
    return keys


@pytest.mark.parametrize("kind", ["503", "hang"])
async def test_an_approve_click_while_slack_is_down_is_acked_decided_once_and_told_later(
    bot: Bot, slack_api: SlackEmulator, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.INFO)
    plan(bot, {"users": [APPROVER_1, APPROVER_2]})
    message = await reach_the_gate(bot, slack_api)
    approve = buttons(message)[GateAction.APPROVE]
    posted_before = len(slack_api.posted())

    await slack_api.go_down(kind)
    status, body = await click(bot, approve, user=APPROVER_1)
    assert (status, body) == (200, ""), "acked while Slack is down"
    await asyncio.wait_for(listeners_done(), GUARD)  # no task raised

    votes, gate_state, kinds = await state(bot.rig.db)
    assert votes == [(APPROVER_1, "approve")]
    assert gate_state == "approved"
    assert kinds == ["gate.opened", "gate.vote", "gate.state"], kinds
    assert await journal_rows(bot.rig.db) == [(APPROVE, True)]
    tried = [c for c in slack_api.calls if c.method == "chat.postEphemeral"]
    assert tried and all(c.response is None for c in tried), "the feedback was tried, in vain"
    failures = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("patchgate")
    ]
    assert failures, "the lost feedback was logged"

    # The rollout goes on without Slack; what it has to say waits in the outbox.
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    async with read_only(bot.rig.db) as session:
        rollout = await session.scalar(sa.select(Rollout))
    assert rollout is not None and rollout.state == "succeeded"
    assert len(slack_api.posted()) == posted_before, "nothing reached Slack while down"
    still = slack_api.message("C0PATCHES", message["ts"])
    assert still is not None and buttons(still), "the buttons are still shown"
    assert await pending(bot) > 0

    await slack_api.come_up()
    assert await replica(bot, bot.rig.db, slack_api).sweep(older_than=dt.timedelta(0)) == 0
    await deliver_everything(bot)

    assert await state(bot.rig.db) == (votes, gate_state, kinds), "nothing decided twice"
    after = slack_api.message("C0PATCHES", message["ts"])
    assert after is not None and not buttons(after), "the buttons were replaced"
    assert f"Approved* by <@{APPROVER_1}>" in json.dumps(after["blocks"])
    updates = [
        c
        for c in slack_api.called("chat.update")
        if c.params.get("ts") == message["ts"] and c.response and c.response.get("ok")
    ]
    assert len(updates) == 1, updates
    assert after["updates"] == 1
    keys = delivered_once(slack_api)
    thread = [m for m in slack_api.posted("C0PATCHES") if m["thread_ts"] == message["thread_ts"]]
    vote_notes = [m for m in thread if "approved" in (m["text"] or "").lower()]
    assert vote_notes, "the vote's note reached the rollout's thread"
    assert any(k.endswith(f":vote:{APPROVER_1}") for k in keys), keys
    summary = [m for m in thread if "*Patched*" in json.dumps(m["blocks"])]
    assert len(summary) == 1


async def test_a_click_whose_approver_group_cannot_be_read_is_decided_by_the_sweep_later(
    bot: Bot, slack_api: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    plan(bot, {"groups": [GROUP]})
    slack_api.usergroups[GROUP] = [APPROVER_1]
    message = await reach_the_gate(bot, slack_api)
    approve = buttons(message)[GateAction.APPROVE]

    await slack_api.go_down("503")
    status, body = await click(bot, approve, user=APPROVER_1)
    assert (status, body) == (200, "")
    await asyncio.wait_for(listeners_done(), GUARD)
    votes, gate_state, _ = await state(bot.rig.db)
    assert (votes, gate_state) == ([], "open"), "who clicked could not be established"
    assert await journal_rows(bot.rig.db) == [(APPROVE, False)], "kept for the sweep"
    assert any("usergroups.users.list" in c.method for c in slack_api.calls)
    assert any(
        r.levelno >= logging.WARNING and r.name.startswith("patchgate") for r in caplog.records
    ), "the deferral was logged"

    await slack_api.come_up()
    sweeper = replica(bot, bot.rig.db, slack_api)
    assert await sweeper.sweep(older_than=dt.timedelta(0)) == 1
    assert await sweeper.sweep(older_than=dt.timedelta(0)) == 0
    votes, gate_state, kinds = await state(bot.rig.db)
    assert (votes, gate_state) == ([(APPROVER_1, "approve")], "approved")
    assert kinds.count("gate.vote") == 1
    told = [c.params["text"] for c in slack_api.called("chat.postEphemeral")]
    assert len(told) == 1 and "approved" in told[0], told
    await bot.rig.engine().run_until_idle()
    await deliver_everything(bot)
    after = slack_api.message("C0PATCHES", message["ts"])
    assert after is not None and not buttons(after) and after["updates"] == 1
    delivered_once(slack_api)
