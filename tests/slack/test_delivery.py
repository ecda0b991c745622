"""The Slack deliverer through the outbox: a post that landed before its worker died is
not posted again, permanent errors go to the dead letter (and App Home), transient ones
are retried, and a ring rollback alerts the on-call channel."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
import sqlalchemy as sa

from integrations.slack import SlackDeliverer, make_client
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import OutboxItem
from workflows.notify import TOPIC
from workflows.outbox import DeliveryItem, OutboxWorker
from workflows.ports import Delivery


class Crash(BaseException):
    """The worker process dies: nothing after this line runs, nothing is recorded."""


class CrashAfterSlackAccepts:
    """Delivers for real, then dies before the outbox records the delivery."""

    def __init__(self, real: SlackDeliverer) -> None:
        self.real = real
        self.crashed: list[str] = []

    async def deliver(self, item: DeliveryItem) -> Delivery:
        await self.real.deliver(item)
        self.crashed.append(item.key)
        raise Crash


async def rows(bot: Bot) -> list[OutboxItem]:
    async with read_only(bot.rig.db) as session:
        return list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))


def posted_keys(slack_api: SlackEmulator) -> Counter[str]:
    return Counter(
        m["metadata"]["event_payload"]["key"] for m in slack_api.posted() if m["metadata"]
    )


async def test_a_post_that_landed_before_its_worker_died_is_not_posted_again(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    rollout_id = await bot.rig.start()
    await bot.rig.engine().run_until_idle()
    crashing = CrashAfterSlackAccepts(bot.worker.deliverers[TOPIC])  # type: ignore[arg-type]
    doomed = OutboxWorker(
        bot.rig.db, {TOPIC: crashing}, clock=bot.rig.clock.now, owner="doomed", lease_seconds=60
    )
    for _ in range(30):
        if not any(r.state == "pending" for r in await rows(bot)):
            break
        await doomed.run_once()  # posts, then dies: the row stays leased, attempts 0
        bot.rig.clock.advance(dt.timedelta(seconds=61))  # its lease expires
        await bot.worker.run_once()  # another worker takes the row over
    assert rollout_id and len(crashing.crashed) >= 3, crashing.crashed
    final = await rows(bot)
    assert {r.state for r in final} == {"delivered"}
    keys = posted_keys(slack_api)
    assert keys and max(keys.values()) == 1, keys
    posts = [r for r in final if r.key in crashing.crashed and r.key in keys]
    assert posts and all(r.result and r.result.get("found") for r in posts), [
        (r.key, r.result) for r in posts
    ]
    assert all(r.attempts == 1 for r in posts), "the crashed attempt was never recorded"


async def run_until_settled(bot: Bot, passes: int = 10) -> list[OutboxItem]:
    for _ in range(passes):
        await bot.worker.run_once()
    return await rows(bot)


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
async def test_a_channel_error_sends_the_message_to_the_dead_letter_shown_in_app_home(
    bot: Bot, slack_api: SlackEmulator, error: str
) -> None:
    if error == "not_in_channel":
        slack_api.not_in.add("C0PATCHES")
    else:
        slack_api.channels.discard("C0PATCHES")
    await bot.rig.start()
    await bot.rig.engine().run_until_idle()
    final = await run_until_settled(bot, passes=3)
    parent = next(r for r in final if r.key.endswith(":parent"))
    assert parent.state == "dead" and parent.attempts == 1, "no retry can fix it"
    assert error in (parent.last_error or "")
    assert not slack_api.posted()

    status, _ = await bot.event({"type": "app_home_opened", "user": "U0SOMEONE", "tab": "home"})
    assert status == 200
    (published,) = await slack_api.wait_for("views.publish")
    home = json.dumps(published.params["view"])
    assert "Undelivered messages" in home and parent.key in home and error in home


async def test_a_revoked_token_is_a_dead_letter_not_a_retry(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    revoked = SlackDeliverer(make_client(token="xoxb-revoked", base_url=slack_api.url, timeout=1))
    bot.worker.deliverers[TOPIC] = revoked
    await bot.rig.start()
    await bot.rig.engine().run_until_idle()
    parent = next(r for r in await run_until_settled(bot, 2) if r.key.endswith(":parent"))
    assert parent.state == "dead" and parent.attempts == 1
    assert "invalid_auth" in (parent.last_error or "")


@pytest.mark.parametrize("kind", ["429", "503"])
async def test_rate_limits_and_server_errors_delay_the_message_and_it_arrives_once(
    bot: Bot, slack_api: SlackEmulator, kind: str
) -> None:
    slack_api.retry_after = 120
    slack_api.fail(kind, times=1, methods=["chat.postMessage"])
    await bot.rig.start()
    await bot.rig.engine().run_until_idle()
    await bot.worker.run_once()
    (parent,) = [r for r in await rows(bot) if r.key.endswith(":parent")]
    assert parent.state == "pending" and parent.attempts == 1
    wait = (parent.next_attempt_at.replace(tzinfo=dt.UTC) - bot.rig.clock.now()).total_seconds()
    if kind == "429":
        assert wait >= 120, "Retry-After is honoured"
    assert not slack_api.posted()
    await bot.worker.run_once()
    assert not slack_api.posted(), "not before it is due"
    bot.rig.clock.advance(dt.timedelta(seconds=wait + 1))
    await bot.worker.run_once()
    (parent,) = [r for r in await rows(bot) if r.key.endswith(":parent")]
    assert parent.state == "delivered" and parent.attempts == 2
    assert posted_keys(slack_api)[parent.key] == 1


async def test_a_ring_rollback_alerts_the_on_call_channel_mentioning_the_on_call_group(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    bot.rig.executor.fail("dev-01", "apply")  # dev has a failure budget of 0
    rollout_id = await bot.rig.start()
    await bot.rig.engine().run_until_idle()
    assert (await bot.rig.rollout(rollout_id)).state == "rolled_back"
    await bot.deliver()
    (parent,) = [m for m in slack_api.posted("C0PATCHES") if m["thread_ts"] is None]
    (alert,) = slack_api.posted("C0ONCALL")
    assert alert["text"].startswith("<!subteam^S0ONCALL> :rotating_light:")
    blocks = json.dumps(alert["blocks"])
    assert "dev-01" in alert["text"] and "ring dev" in alert["text"]
    link = f"/archives/C0PATCHES/p{parent['ts'].replace('.', '')}"
    assert link in blocks and f"Rollout #{rollout_id} thread" in blocks
    assert alert["metadata"]["event_payload"]["key"].endswith(":rollback")


async def test_a_zone_alert_without_an_on_call_channel_is_a_dead_letter_naming_the_setting(
    slack_api: SlackEmulator,
) -> None:
    from workflows import notify
    from workflows.errors import PermanentDeliveryError

    row = notify.zone_alert(
        zone="dmz",
        outage="abc",
        back=False,
        text="Zone dmz has no live worker",
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    item = DeliveryItem(
        id=1,
        key=row["key"],
        topic=TOPIC,
        payload=row["payload"],
        rollout_id=None,
        parent=None,
        attempts=0,
    )
    client = make_client(token=slack_api.token, base_url=slack_api.url)
    with pytest.raises(PermanentDeliveryError, match="needs PATCHGATE_ONCALL_CHANNEL"):
        await SlackDeliverer(client).deliver(item)
    assert slack_api.posted() == []
    delivered = await SlackDeliverer(client, oncall_channel="C0ONCALL").deliver(item)
    assert delivered.data["channel"] == "C0ONCALL"
    assert [m["text"] for m in slack_api.posted("C0ONCALL")] == [
        ":rotating_light: Zone dmz has no live worker"
    ]
