"""Hostile input at /slack/events (issue 15, item 4): each of these was a 500 with a
traceback; now each is a 2xx/4xx, and every refusal is audited.

Oversized headers, signed payloads that are JSON but not an object or nested thousands
deep, numbers beyond any row id in ``/patch ... N`` and in an Approve button's GateRef.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import pytest
import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp

from bot.slack.approvals.ids import GateAction
from bot.slack.guard import misshapen
from bot.slack.journal import Journal
from tests.enginekit import APPROVER_1, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, Bot
from tests.slack.test_hostile_requests import FORM, refusals, snapshot
from tests.slack.test_rollout_flow import buttons, last_ephemeral, start_and_reach_the_gate
from workflows.db import read_only
from workflows.models import SeenSignature


def signed_bytes(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" * 400},
    ],
    ids=["timestamp", "signature"],
)
async def test_an_oversized_signature_header_is_a_400_and_audited(
    bot: Bot, headers: dict[str, str]
) -> None:
    before = await snapshot(bot)
    status, text = await bot.send("command=/patch", FORM, headers)
    assert (status, json.loads(text)) == (400, {"error": "malformed_headers"})
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_headers"


@pytest.mark.parametrize("payload", ["[]", "1", '"x"', "null", "[" * 5000 + "]" * 5000])
async def test_a_signed_payload_not_an_object_or_too_deep_is_a_400_and_audited(
    bot: Bot, payload: str
) -> None:
    before = await snapshot(bot)
    status, text = await bot.send(urllib.parse.urlencode({"payload": payload}), FORM)
    assert (status, json.loads(text)) == (400, {"error": "malformed_payload"})
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_payload"


async def test_a_deep_json_body_is_a_400_and_audited(bot: Bot) -> None:
    status, text = await bot.send('{"a":' * 3000 + "1" + "}" * 3000, "application/json")
    assert (status, json.loads(text)) == (400, {"error": "malformed_payload"})
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_payload"


async def test_a_body_that_is_not_utf8_is_refused_and_audited(bot: Bot) -> None:
    body = b"payload=%7B%7D&x=\xff\xfe"
    headers = {"Content-Type": FORM, **signed_bytes(body)}
    async with bot.session.post(bot.url, data=body, headers=headers) as resp:
        assert resp.status in (400, 401)
    assert len(await refusals(bot)) == 1


@pytest.mark.parametrize("sub", ["status", "approve", "reject", "abort"])
@pytest.mark.parametrize("number", [str(10**30), "#" + str(2**31), "9" * 5000])
async def test_a_rollout_number_beyond_any_row_does_not_exist(
    bot: Bot, sub: str, number: str
) -> None:
    reason = " because" if sub == "reject" else ""
    status, text = await bot.command(f"{sub} {number}{reason}", user=REQUESTER)
    assert status == 200
    assert "does not exist" in text, text


@pytest.mark.parametrize("number", ["²", "١٢"])
async def test_a_rollout_number_in_other_digits_is_not_a_number(bot: Bot, number: str) -> None:
    status, text = await bot.command(f"status {number}", user=REQUESTER)
    assert status == 200 and "does not exist" not in text, text


@pytest.mark.parametrize("field", ["gate_id", "rollout_id"])
async def test_an_approve_click_naming_an_id_beyond_any_row_is_refused_once(
    bot: Bot, slack_api: SlackEmulator, field: str
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    before = await snapshot(bot)
    value = json.loads(buttons(message)[GateAction.APPROVE])
    status, _ = await bot.click(
        GateAction.APPROVE, json.dumps({**value, field: 10**30}), user=APPROVER_1
    )
    assert status == 200
    assert "not one PatchGate understands" in await last_ephemeral(slack_api, 1)
    await asyncio.gather(*list(Journal.tasks))
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert (event["reason"], event["actor"]) == ("bad_button_value", APPROVER_1)
    async with read_only(bot.rig.db) as session:
        left = await session.scalar(
            sa.select(sa.func.count())
            .select_from(SeenSignature)
            .where(SeenSignature.kind.is_not(None), SeenSignature.processed_at.is_(None))
        )
    assert left == 0, "the journaled click is done with, not left for the sweep"


def test_the_shape_check_passes_slacks_own_payloads() -> None:
    """Payloads as Slack documents them (block_actions from a message with its button's
    text object, view_submission, a reaction event) are not misshapen."""
    click = {
        "type": "block_actions",
        "user": {"id": "U1", "username": "a", "name": "a", "team_id": "T1"},
        "api_app_id": "A1",
        "token": "t",
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
        "trigger_id": "1.2.3",
        "team": {"id": "T1", "domain": "d"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C1", "name": "patches"},
        "message": {"type": "message", "user": "U2", "ts": "1.2", "text": "hi", "blocks": []},
        "state": {"values": {}},
        "response_url": "https://hooks.slack.com/actions/1",
        "actions": [
            {
                "action_id": "gate_approve",
                "block_id": "gate_actions",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": "{}",
                "style": "primary",
                "type": "button",
                "action_ts": "1.3",
            }
        ],
    }
    submission = {
        "type": "view_submission",
        "team": {"id": "T1", "domain": "d"},
        "user": {"id": "U1", "team_id": "T1"},
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "reject",
            "private_metadata": "{}",
            "state": {"values": {"b": {"a": {"type": "plain_text_input", "value": "x"}}}},
            "title": {"type": "plain_text", "text": "Reject"},
            "team_id": "T1",
        },
    }
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event": {
            "type": "reaction_added",
            "user": "U1",
            "item": {"type": "message", "channel": "C1", "ts": "1.2"},
            "reaction": "thumbsup",
            "event_ts": "1.4",
        },
        "authorizations": [{"team_id": "T1", "user_id": "U3", "is_bot": True}],
        "event_id": "Ev1",
        "event_time": 1,
    }
    user_change = {"type": "event_callback", "event": {"type": "user_change", "user": {"id": "U"}}}
    for payload in (click, submission, event, user_change):
        assert misshapen(payload) is None, payload
    assert misshapen({"type": "block_actions", "actions": None}) is not None
    assert misshapen({"type": "event_callback", "event": []}) is not None


async def test_a_signature_header_not_ascii_is_a_400_and_audited(bot: Bot) -> None:
    headers = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"}
    status, text = await bot.send("command=/patch", FORM, headers)
    assert (status, json.loads(text)) == (400, {"error": "malformed_headers"})
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_headers"


async def test_a_shape_bolt_cannot_match_is_a_400_and_audited(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last resort for a field the shape check does not know: Bolt's listener
    matching raised (outside its own error handling), e.g. on ``"actions": null``."""

    async def unmatchable(self: AsyncApp, req: Any) -> Any:
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(AsyncApp, "async_dispatch", unmatchable)
    status, text = await bot.interact({"type": "shortcut", "callback_id": "x"})
    assert (status, json.loads(text)) == (400, {"error": "malformed_payload"})
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_payload" and "TypeError" in event["detail"]
