"""Text typed by people is echoed inert (issue 15, item 6): a reject, pause, abort,
freeze or exception reason holding ``<!channel>``, a disguised link and ``&`` reaches
Slack (every Web API call the emulator recorded, and the slash-command answers) with
``&``, ``<`` and ``>`` escaped as Slack's mrkdwn requires, never as live markup."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import sqlalchemy as sa

from bot.slack.approvals.ids import GateAction
from bot.slack.journal import Journal
from integrations.slack.messages import exception_lines
from tests.enginekit import APPROVER_1, REQUESTER, make_plan
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from tests.slack.test_rollout_flow import buttons, start_and_reach_the_gate
from workflows import exceptions
from workflows.db import read_only, unit_of_work
from workflows.engine import Engine, EngineDeps
from workflows.errors import Forbidden
from workflows.gates import Actor
from workflows.models import Rollout
from workflows.notify import ExceptionApplied, mrkdwn
from workflows.schedule import Schedules

HOSTILE = "<!channel> read <https://evil.example/x|the runbook> & ask <@U0BOSS>"
LIVE = ("<!channel>", "<https://evil", "<@U0BOSS>", "& ask")
INERT = "&lt;!channel&gt; read &lt;https://evil.example/x|the runbook&gt; &amp; ask &lt;@U0BOSS&gt;"


def sent_to_slack(slack_api: SlackEmulator) -> str:
    """Every text and block PatchGate sent to Slack, as one JSON string (unescaped)."""
    methods = {"chat.postMessage", "chat.update", "chat.postEphemeral", "views.publish"}
    calls = [c.params for c in slack_api.calls if c.method in methods]
    return json.dumps(calls, ensure_ascii=False)


def assert_inert(*texts: str) -> None:
    joined = "\n".join(texts)
    for live in LIVE:
        assert live not in joined, (live, joined)
    assert INERT in joined, "the typed text is echoed (escaped), not dropped"


def test_the_escape_is_slacks_rule() -> None:
    assert mrkdwn(HOSTILE) == INERT
    assert mrkdwn("a &amp; b") == "a &amp;amp; b"  # typed entities show as typed


async def rollout_id(bot: Bot) -> int:
    async with read_only(bot.rig.db) as session:
        found = await session.scalar(sa.select(Rollout.id).order_by(Rollout.id.desc()))
    assert found is not None
    return found


async def test_a_hostile_reject_reason_is_inert_in_every_message(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await start_and_reach_the_gate(bot, slack_api)
    n = await rollout_id(bot)
    status, answer = await bot.command(f"reject {n} {HOSTILE}", user=APPROVER_1)
    assert status == 200 and "rejected" in answer
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    _, detail = await bot.command(f"status {n}", user=REQUESTER)
    assert_inert(answer)
    assert_inert(detail)
    assert_inert(sent_to_slack(slack_api))
    async with read_only(bot.rig.db) as session:
        stored = await session.scalar(sa.select(Rollout.reason).where(Rollout.id == n))
    assert stored is not None and HOSTILE in stored  # stored as typed; escaped when shown


async def test_hostile_pause_and_abort_reasons_are_inert(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await start_and_reach_the_gate(bot, slack_api)
    n = await rollout_id(bot)
    status, _ = await bot.command(f"pause {n} {HOSTILE}", user=REQUESTER)
    assert status == 200
    await bot.rig.engine().run_until_idle()
    _, detail = await bot.command(f"status {n}", user=REQUESTER)
    assert "held" in detail
    assert_inert(detail)
    status, _ = await bot.command(f"abort {n} {HOSTILE}", user=REQUESTER)
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    assert_inert(sent_to_slack(slack_api))


async def test_a_hostile_freeze_reason_is_inert_in_the_answer_notes_and_status(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    await start_and_reach_the_gate(bot, slack_api)
    status, answer = await bot.command(f"freeze {HOSTILE}", user=REQUESTER)
    assert status == 200 and "freeze" in answer.lower()
    rig = bot.rig
    plan = make_plan()
    deps = EngineDeps(
        db=rig.db, executor=rig.executor, health=rig.health, inventory=rig.inventory,
        clock=rig.clock, schedule=Schedules(plans=lambda: {plan.name: plan}),
    )  # fmt: skip
    await Engine(deps).run_until_idle()
    await bot.deliver()
    _, detail = await bot.command(f"status {await rollout_id(bot)}", user=REQUESTER)
    assert "held" in detail
    assert_inert(answer)
    assert_inert(detail)
    assert_inert(sent_to_slack(slack_api))


def test_a_hostile_exception_reason_is_inert_in_the_block_kit_lines() -> None:
    item = ExceptionApplied(
        exception_id=1,
        host="stg-01",
        package="openssl",
        owner="U0DBTEAM1",
        expires_at="2027-01-01",
        reason=HOSTILE,
    )
    assert_inert(exception_lines([item]))


async def test_a_hostile_exception_reason_is_inert_in_the_rollouts_messages(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    async with unit_of_work(bot.rig.db) as session:
        granted = await exceptions.grant(
            session,
            actor=Actor(REQUESTER),
            operators=frozenset({REQUESTER}),
            host="stg-02",
            owner="U0DBTEAM1",
            reason=HOSTILE,
            expires_at=bot.rig.clock.now() + dt.timedelta(days=3),
            now=bot.rig.clock.now(),
            max_days=30,
        )
    assert not isinstance(granted, Forbidden)
    message = await start_and_reach_the_gate(bot, slack_api)
    approve = buttons(message)[GateAction.APPROVE]
    status, _ = await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
    assert status == 200
    await asyncio.gather(*list(Journal.tasks), return_exceptions=True)
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    sent = sent_to_slack(slack_api)
    assert "Left out by exceptions" in sent
    assert_inert(sent)
