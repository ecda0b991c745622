"""End to end through the real app: /patch run -> thread -> readiness message -> clicks
(refused, refused, accepted) -> message updated -> next ring -> summary."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.approvals.ids import GateAction, RejectModal
from tests.enginekit import APPROVER_1, OUTSIDER, REQUESTER, plan_dict
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import Event, Gate, Rollout

GROUP = "S0APPROVERS"


def two_ring_plan(bot: Bot) -> None:
    plan = plan_dict()
    plan["rings"] = [
        plan["rings"][0],
        {
            "name": "staging",
            "hosts": "group:staging",
            "batch": "50%",
            "gate": {"type": "approval", "approvers": {"groups": [GROUP]}, "timeout": "4h"},
        },
    ]
    YAML().dump(plan, bot.deps.settings.plans_dir / "weekly.yml")


def buttons(message: dict[str, Any]) -> dict[str, str]:
    for block in message["blocks"]:
        if block["type"] == "actions":
            return {e["action_id"]: e["value"] for e in block["elements"]}
    return {}


def readiness(slack_api: SlackEmulator) -> dict[str, Any]:
    found = [m for m in slack_api.posted("C0PATCHES") if buttons(m)]
    assert len(found) == 1, found
    return found[0]


async def last_ephemeral(slack_api: SlackEmulator, count: int) -> str:
    calls = await slack_api.wait_for("chat.postEphemeral", count)
    return str(calls[count - 1].params["text"])


async def start_and_reach_the_gate(bot: Bot, slack_api: SlackEmulator) -> dict[str, Any]:
    two_ring_plan(bot)
    slack_api.usergroups[GROUP] = [APPROVER_1, REQUESTER]
    status, body = await bot.command("run weekly", user=REQUESTER)
    assert status == 200 and "Rollout #" in body and "scheduled" in body
    engine = bot.rig.engine()
    await engine.run_until_idle()
    await bot.deliver()
    return readiness(slack_api)


async def test_a_rollout_from_slack_asks_in_its_thread_and_only_an_approver_passes_the_gate(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    top = [m for m in slack_api.posted("C0PATCHES") if m["thread_ts"] is None]
    assert len(top) == 1, "one parent message per rollout"
    parent = top[0]
    assert message["thread_ts"] == parent["ts"], "the readiness message is in the thread"
    assert parent["metadata"]["event_payload"]["key"].endswith(":parent")
    text = json.dumps(message["blocks"], ensure_ascii=False)
    assert "Ring dev*: 2 ok, 0 failed, 0 rolled back" in text
    assert "openssl` 3.0.11-1 → 3.0.13-1" in text
    approve = buttons(message)[GateAction.APPROVE]

    status, _ = await bot.click(GateAction.APPROVE, approve, user=OUTSIDER)
    assert status == 200
    assert "is not an approver" in await last_ephemeral(slack_api, 1)
    status, _ = await bot.click(GateAction.APPROVE, approve, user=REQUESTER)
    assert "requester may not approve" in await last_ephemeral(slack_api, 2)
    async with read_only(bot.rig.db) as session:
        gate = await session.scalar(sa.select(Gate))
        refusals = (
            await session.scalars(sa.select(Event).where(Event.kind == "gate.refused"))
        ).all()
    assert gate is not None and gate.state == "open"
    assert [e.actor for e in refusals] == [OUTSIDER, REQUESTER]

    await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
    assert "approved" in await last_ephemeral(slack_api, 3)
    await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
    assert "already approved" in await last_ephemeral(slack_api, 4)

    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    async with read_only(bot.rig.db) as session:
        rollout = await session.scalar(sa.select(Rollout))
    assert rollout is not None and rollout.state == "succeeded"
    updated = readiness_after = slack_api.message("C0PATCHES", message["ts"])
    assert readiness_after is not None and not buttons(readiness_after)
    assert f"Approved* by <@{APPROVER_1}>" in json.dumps(updated["blocks"] if updated else [])
    final_parent = slack_api.message("C0PATCHES", parent["ts"])
    assert final_parent is not None and "succeeded" in final_parent["text"]
    summary = [
        m for m in slack_api.posted("C0PATCHES") if "*Patched*: 4" in json.dumps(m["blocks"])
    ]
    assert len(summary) == 1 and summary[0]["thread_ts"] == parent["ts"]
    keys = [m["metadata"]["event_payload"]["key"] for m in slack_api.posted() if m["metadata"]]
    assert len(keys) == len(set(keys)), "every message exactly once"


async def test_a_click_for_a_patch_set_that_is_no_longer_pending_is_refused(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    value = json.loads(buttons(message)[GateAction.APPROVE])
    value["patchset_hash"] = "0" * 64
    await bot.click(GateAction.APPROVE, json.dumps(value), user=APPROVER_1)
    assert "approval refused: it is for patch set" in await last_ephemeral(slack_api, 1)


async def test_reject_opens_a_modal_that_requires_a_reason_then_stops_the_rollout(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    reject = buttons(message)[GateAction.REJECT]
    status, _ = await bot.click(GateAction.REJECT, reject, user=APPROVER_1)
    assert status == 200
    (opened,) = await slack_api.wait_for("views.open")
    assert opened.params["trigger_id"] == f"trigger-{APPROVER_1}"
    view = opened.params["view"]
    assert view["callback_id"] == RejectModal.CALLBACK

    def submission(reason: str) -> dict[str, Any]:
        return {
            "type": "view_submission",
            "team": {"id": "T0TEAM"},
            "user": {"id": APPROVER_1},
            "view": {
                "id": "V0VIEW",
                "type": "modal",
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {
                    "values": {
                        RejectModal.REASON_BLOCK: {
                            RejectModal.REASON_INPUT: {"type": "plain_text_input", "value": reason}
                        }
                    }
                },
            },
        }

    status, body = await bot.interact(submission("   "))
    assert status == 200 and "needs a reason" in body
    status, body = await bot.interact(submission("kernel regression on staging"))
    assert status == 200 and "errors" not in body
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    async with read_only(bot.rig.db) as session:
        rollout = await session.scalar(sa.select(Rollout))
    assert rollout is not None and rollout.state == "rejected"
    updated = slack_api.message("C0PATCHES", message["ts"])
    assert updated is not None and not buttons(updated)
    assert "kernel regression on staging" in json.dumps(updated["blocks"])


async def test_the_text_path_applies_the_same_gate_rules(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    n = json.loads(buttons(message)[GateAction.APPROVE])["rollout_id"]
    status, body = await bot.command(f"approve {n}", user=APPROVER_1)
    assert status == 200 and GateAction.APPROVE in body, "shows the buttons bound to the hash"
    _, body = await bot.command(f"approve {n} deadbeef00", user=APPROVER_1)
    assert "approval refused" in body
    _, body = await bot.command(f"reject {n}", user=APPROVER_1)
    assert "a rejection needs a reason" in body
    _, body = await bot.command(f"reject {n} not today", user=OUTSIDER)
    assert "is not an approver" in body


async def test_app_home_shows_the_gate_waiting_for_the_viewer(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    n = json.loads(buttons(message)[GateAction.APPROVE])["rollout_id"]
    status, _ = await bot.event({"type": "app_home_opened", "user": APPROVER_1, "tab": "home"})
    assert status == 200
    (published,) = await slack_api.wait_for("views.publish")
    text = json.dumps(published.params["view"])
    assert f"rollout #{n} `weekly`: ring staging" in text
    assert "awaiting_approval" in text
