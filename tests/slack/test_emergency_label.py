"""An emergency is labelled where people look: the channel's parent and readiness
messages, `rollout show` (and its --json), /patch status and App Home."""

from __future__ import annotations

import argparse
import json

import sqlalchemy as sa

from bot.cli.rollout import show
from tests.enginekit import OUTSIDER, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from tests.slack.test_discovery_commands import (
    answer,
    finding,
    rollouts,
    store,
    write_emergency_plan,
)
from workflows.db import read_only
from workflows.models import OutboxItem

CVE = "CVE-2024-0001"
LABEL = f"EMERGENCY {CVE}: "


async def start_emergency(bot: Bot, slack_api: SlackEmulator) -> int:
    write_emergency_plan(bot)
    await store(bot, {"prod-02": [finding("prod-02", "openssl", (CVE,), 90)]})
    status, _ = await bot.command(f"emergency {CVE}", user=REQUESTER)
    assert status == 200
    await answer(slack_api)
    (rollout,) = await rollouts(bot)
    assert rollout.emergency and rollout.emergency_cve == CVE
    return rollout.id


async def test_an_emergencys_parent_and_readiness_messages_say_emergency_and_the_cve(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    rollout_id = await start_emergency(bot, slack_api)
    await bot.rig.engine().run_until_idle()
    async with read_only(bot.rig.db) as session:
        rows = list(
            await session.scalars(
                sa.select(OutboxItem)
                .where(OutboxItem.rollout_id == rollout_id)
                .order_by(OutboxItem.id)
            )
        )
    by_type = {row.payload.get("type"): row.payload for row in rows}
    assert by_type["rollout.parent"]["text"].startswith(LABEL), by_type["rollout.parent"]
    assert by_type["gate.opened"]["text"].startswith(LABEL), by_type["gate.opened"]


async def test_rollout_show_and_its_json_flag_the_emergency(
    bot: Bot, slack_api: SlackEmulator, capsys: object
) -> None:
    rollout_id = await start_emergency(bot, slack_api)
    settings = bot.deps.settings.model_copy(update={"database_url": bot.rig.db.urls.sync_url})
    await show(argparse.Namespace(rollout_id=rollout_id, json=True), settings)
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    assert data["emergency"] is True and data["emergency_cve"] == CVE
    await show(argparse.Namespace(rollout_id=rollout_id, json=False), settings)
    first = capsys.readouterr().out.splitlines()[0]  # type: ignore[attr-defined]
    assert first.startswith(f"{LABEL}Rollout #{rollout_id} of plan urgent")


async def test_status_and_app_home_label_the_emergency(bot: Bot, slack_api: SlackEmulator) -> None:
    rollout_id = await start_emergency(bot, slack_api)
    _, body = await bot.command("status", user=REQUESTER)
    assert f":rotating_light: *EMERGENCY* {CVE} #{rollout_id} `urgent`" in json.loads(body)["text"]
    status, _ = await bot.event({"type": "app_home_opened", "user": OUTSIDER, "tab": "home"})
    assert status == 200
    (published,) = await slack_api.wait_for("views.publish")
    view = published.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    home = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert f":rotating_light: *EMERGENCY* {CVE} #{rollout_id} `urgent`" in home
