"""A Slack outage (503s, 429s, timeouts, a post that lands but whose answer is lost)
delays messages but loses none and sends none twice."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa

from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import OutboxItem


async def test_every_message_arrives_exactly_once_after_an_outage(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    rollout_id = await bot.rig.start()
    slack_api.slow_seconds = 1.5  # the client gives up after 1 s
    for kind, times in (("503", 2), ("lost", 2), ("429", 2), ("timeout", 1), ("lost", 1)):
        slack_api.fail(kind, times=times, methods=["chat.postMessage", "chat.update"])
    await bot.rig.approve_all(bot.rig.engine(), rollout_id)
    for _ in range(60):
        await bot.worker.run_once()
        async with read_only(bot.rig.db) as session:
            states = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
        if states.get("pending", 0) == 0:
            break
        bot.rig.clock.advance(dt.timedelta(seconds=30))
    assert set(states) == {"delivered"}, states
    assert not any(f.remaining for f in slack_api.failures), "every failure was exercised"
    keys = Counter(
        m["metadata"]["event_payload"]["key"] for m in slack_api.posted() if m["metadata"]
    )
    assert keys and max(keys.values()) == 1, keys
    async with read_only(bot.rig.db) as session:
        posted_rows = (
            await session.scalars(
                sa.select(OutboxItem.key).where(~OutboxItem.key.contains(":update:"))
            )
        ).all()
    closing = [k for k in posted_rows if k.endswith(":closed")]
    assert set(keys) == set(posted_rows) - set(closing)
    lookups = slack_api.called("conversations.history") + slack_api.called("conversations.replies")
    assert lookups, "looked for lost posts before posting again"
