"""Issue 16: a rollout started during a change freeze keeps its whole Slack trail. The
freeze's notes are queued before the rollout's parent message; the outbox delivers the
parent first, then the notes in order, and nothing goes dead (both backends, real
slack_sdk against the Slack emulator)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.enginekit import OPERATORS, REQUESTER, make_plan
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows import schedule as schedules
from workflows.db import read_only, unit_of_work
from workflows.engine import Engine, EngineDeps
from workflows.gates import Actor
from workflows.models import Freeze, OutboxItem


def engine_with_schedule(bot: Bot) -> Engine:
    rig, plan = bot.rig, make_plan()
    return Engine(
        EngineDeps(
            db=rig.db, executor=rig.executor, health=rig.health, inventory=rig.inventory,
            clock=rig.clock, schedule=schedules.Schedules(plans=lambda: {plan.name: plan}),
        )
    )  # fmt: skip


async def outbox_rows(bot: Bot) -> list[OutboxItem]:
    async with read_only(bot.rig.db) as session:
        return list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))


async def test_a_rollout_started_during_a_freeze_keeps_its_whole_slack_trail(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    rig = bot.rig
    engine = engine_with_schedule(bot)
    async with unit_of_work(rig.db) as session:
        frozen = await schedules.freeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, reason="incident 42",
            until=None, now=rig.clock.now(),
        )  # fmt: skip
    assert isinstance(frozen, Freeze)
    rollout_id = await rig.start()
    await engine.run_until_idle()
    await bot.deliver()  # the freeze note waits for a parent message not yet queued
    assert (await rig.rollout(rollout_id)).hold_reason == "change freeze: incident 42"
    assert [r.state for r in await outbox_rows(bot)] == ["pending"]

    async with unit_of_work(rig.db) as session:
        lifted = await schedules.unfreeze(
            session, actor=Actor(REQUESTER), operators=OPERATORS, now=rig.clock.now()
        )
    assert isinstance(lifted, list)
    await rig.approve_all(engine, rollout_id)
    await bot.deliver()
    assert (await rig.rollout(rollout_id)).state == "succeeded"

    rows = await outbox_rows(bot)
    assert rows[0].key.startswith(f"rollout:{rollout_id}:freeze:")  # queued before the parent
    assert [(r.key, r.state, r.last_error) for r in rows if r.state != "delivered"] == []
    [parent] = [m for m in slack_api.posted("C0PATCHES") if m["thread_ts"] is None]
    thread = [m["text"] for m in slack_api.posted("C0PATCHES") if m["thread_ts"] == parent["ts"]]
    assert thread[0].startswith("Change freeze (incident 42)"), thread[:3]
    assert thread[1] == "Change freeze lifted: continuing", thread[:3]
    replies = [r for r in rows if r.parent_key == f"rollout:{rollout_id}:parent"]
    assert len(thread) >= len([r for r in replies if "update" not in r.key]) > 5
