"""Hostile requests at /slack/events (issue 9, item 3, the HTTP endpoint's part): each is
refused with the right status or ephemeral message, audited, and changes nothing.

Forged, stale, replayed, oversized and header-less requests are not authenticated: they
are audited at most once per reason per minute (with a count), so a flood of them cannot
flood the audit log. Signed requests that ask for something impossible (malformed payload,
unknown action, tampered button value) are audited one by one with the clicker as actor.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.approvals.ids import GateAction
from bot.slack.security import MAX_SKEW, check_signature
from tests.enginekit import APPROVER_1, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, Bot, signed_request
from tests.slack.test_rollout_flow import buttons, last_ephemeral, start_and_reach_the_gate
from workflows.db import read_only
from workflows.models import Approval, Event, Gate, OutboxItem, Request, Rollout

FORM = "application/x-www-form-urlencoded"


def run_body(text: str = "run weekly") -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0TEAM",
            "channel_id": "C0PATCHES",
            "user_id": REQUESTER,
            "command": "/patch",
            "text": text,
        }
    )


async def snapshot(bot: Bot) -> dict[str, Any]:
    """Everything a Slack request could change, except the audit log itself."""
    async with read_only(bot.rig.db) as session:

        async def rows(model: Any, *cols: Any) -> list[Any]:
            return [tuple(r) for r in await session.execute(sa.select(*cols).order_by(model.id))]

        return {
            "rollouts": await rows(Rollout, Rollout.id, Rollout.state, Rollout.hold_reason),
            "gates": await rows(Gate, Gate.id, Gate.state),
            "approvals": await rows(Approval, Approval.id),
            "requests": await rows(Request, Request.id),
            "outbox": await rows(OutboxItem, OutboxItem.id),
        }


async def refusals(bot: Bot, kind: str = "slack.request.refused") -> list[dict[str, Any]]:
    async with read_only(bot.rig.db) as session:
        events = await session.scalars(sa.select(Event).where(Event.kind == kind))
        return [{**json.loads(e.body)["data"], "actor": e.actor} for e in events]


# --- signature and timestamp: the pure check at the boundary ---------------------------------


def test_the_timestamp_window_is_300_seconds_either_way() -> None:
    body = b"text=help"
    headers = signed_request(body.decode(), timestamp=1_700_000_000)
    ts = 1_700_000_000
    assert check_signature(headers, body, secret=SECRET, now=ts + MAX_SKEW) is None
    assert check_signature(headers, body, secret=SECRET, now=ts - MAX_SKEW) is None
    for now in (ts + MAX_SKEW + 1, ts - MAX_SKEW - 1, ts + MAX_SKEW + 0.001):
        refusal = check_signature(headers, body, secret=SECRET, now=now)
        assert refusal is not None and refusal.reason == "stale_timestamp", now
    refusal = check_signature(headers, body + b"x", secret=SECRET, now=ts)
    assert refusal is not None and refusal.reason == "bad_signature"


# --- through the real app ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "drop",
    [
        ("X-Slack-Signature",),
        ("X-Slack-Request-Timestamp",),
        ("X-Slack-Signature", "X-Slack-Request-Timestamp"),
    ],
)
async def test_a_request_without_its_headers_is_refused_audited_and_changes_nothing(
    bot: Bot, drop: tuple[str, ...]
) -> None:
    before = await snapshot(bot)
    body = run_body()
    headers = {k: v for k, v in signed_request(body).items() if k not in drop}
    headers["User-Agent"] = "Slackbot 1.0"  # never empty: Bot.send signs when given none
    status, text = await bot.send(body, FORM, headers)
    assert (status, json.loads(text)) == (401, {"error": "missing_headers"})
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "missing_headers" and event["count"] == 1


@pytest.mark.parametrize("offset", [MAX_SKEW + 1, -(MAX_SKEW + 1), 6 * 60, -3600])
async def test_a_timestamp_more_than_300_seconds_old_or_ahead_is_refused(
    bot: Bot, offset: int
) -> None:
    before = await snapshot(bot)
    body = run_body()
    status, text = await bot.send(
        body, FORM, signed_request(body, timestamp=int(time.time()) - offset)
    )
    assert (status, json.loads(text)) == (401, {"error": "stale_timestamp"})
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "stale_timestamp"


@pytest.mark.parametrize("offset", [MAX_SKEW - 5, -(MAX_SKEW - 5)])
async def test_a_timestamp_inside_the_window_is_accepted(bot: Bot, offset: int) -> None:
    body = run_body("help")
    status, text = await bot.send(
        body, FORM, signed_request(body, timestamp=int(time.time()) - offset)
    )
    assert status == 200 and "/patch run PLAN" in text
    assert await refusals(bot) == []


async def test_a_flood_of_forged_requests_is_one_audit_event_not_one_each(bot: Bot) -> None:
    before = await snapshot(bot)
    body = run_body()
    forged = signed_request(body, secret="not-the-secret")
    for _ in range(20):
        status, _ = await bot.send(body, FORM, forged)
        assert status == 401
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert (event["reason"], event["count"], event["actor"]) == ("bad_signature", 1, None)


async def test_a_replay_inside_the_window_is_refused_and_audited(bot: Bot) -> None:
    body = run_body()
    headers = signed_request(body)
    status, _ = await bot.send(body, FORM, headers)
    assert status == 200
    after_first = await snapshot(bot)
    assert len(after_first["rollouts"]) == 1
    status, text = await bot.send(body, FORM, headers)
    assert (status, json.loads(text)) == (401, {"error": "replay"})
    assert await snapshot(bot) == after_first
    assert [e["reason"] for e in await refusals(bot)] == ["replay"]


async def test_a_replay_after_the_window_is_refused_by_its_timestamp(bot: Bot) -> None:
    body = run_body()
    signed_at = int(time.time()) - (MAX_SKEW - 2)
    headers = signed_request(body, timestamp=signed_at)
    status, _ = await bot.send(body, FORM, headers)
    assert status == 200
    after_first = await snapshot(bot)
    await asyncio.sleep(max(0.0, signed_at + MAX_SKEW + 0.2 - time.time()))  # window closes
    status, text = await bot.send(body, FORM, headers)
    assert (status, json.loads(text)) == (401, {"error": "stale_timestamp"})
    assert await snapshot(bot) == after_first
    assert [e["reason"] for e in await refusals(bot)] == ["stale_timestamp"]


async def test_an_oversized_body_is_refused_before_it_is_read_whole(bot: Bot) -> None:
    before = await snapshot(bot)
    body = run_body() + "&pad=" + "x" * (1024 * 1024)
    status, _ = await bot.send(body, FORM)
    assert status == 413
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "oversized"


async def test_a_signed_payload_that_is_not_json_is_a_400_and_audited(bot: Bot) -> None:
    before = await snapshot(bot)
    body = urllib.parse.urlencode({"payload": '{"type": "block_actions", "actions": [}'})
    status, text = await bot.send(body, FORM)
    assert (status, json.loads(text)) == (400, {"error": "malformed_payload"})
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert event["reason"] == "malformed_payload"


async def test_a_click_on_an_unknown_action_is_acked_explained_and_audited(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    before = await snapshot(bot)
    value = buttons(message)[GateAction.APPROVE]
    status, _ = await bot.click("gate_approve_all_rings", value, user=APPROVER_1)
    assert status == 200
    assert "not one PatchGate understands" in await last_ephemeral(slack_api, 1)
    assert await snapshot(bot) == before
    (event,) = await refusals(bot)
    assert (event["reason"], event["actor"]) == ("unknown_action", APPROVER_1)
    assert "gate_approve_all_rings" in event["detail"]


def _tamper(value: str, **changes: Any) -> str:
    return json.dumps({**json.loads(value), **changes})


@pytest.mark.parametrize(
    ("tamper", "said", "kind"),
    [
        (lambda v: v[:-3], "not one PatchGate understands", "slack.request.refused"),
        (lambda v: _tamper(v, rollout_id=999), "is not a gate of rollout #999", "gate.refused"),
        (lambda v: _tamper(v, gate_id=999), "gate 999 does not exist", "gate.refused"),
        (lambda v: _tamper(v, patchset_hash="0" * 64), "it is for patch set", "gate.refused"),
    ],
    ids=["not-a-reference", "other-rollout", "other-gate", "other-patch-set"],
)
async def test_a_tampered_button_value_is_refused_audited_and_changes_nothing(
    bot: Bot, slack_api: SlackEmulator, tamper: Any, said: str, kind: str
) -> None:
    message = await start_and_reach_the_gate(bot, slack_api)
    before = await snapshot(bot)
    value = tamper(buttons(message)[GateAction.APPROVE])
    status, _ = await bot.click(GateAction.APPROVE, value, user=APPROVER_1)
    assert status == 200
    assert said in await last_ephemeral(slack_api, 1)
    assert await snapshot(bot) == before, "no vote, the gate still open"
    (event,) = await refusals(bot, kind)
    assert event["actor"] == APPROVER_1


async def test_slacks_unsigned_ssl_check_is_answered_and_runs_nothing(bot: Bot) -> None:
    before = await snapshot(bot)
    body = urllib.parse.urlencode({"ssl_check": "1", "token": "legacy"})
    status, text = await bot.send(body, FORM, {"User-Agent": "Slackbot 1.0"})
    assert (status, text) == (200, "")
    assert await snapshot(bot) == before
    assert await refusals(bot) == []
