"""Every request is verified: forged, stale and replayed requests are refused and run nothing."""

from __future__ import annotations

import time
import urllib.parse

import sqlalchemy as sa

from tests.enginekit import REQUESTER
from tests.slack.conftest import Bot, signed_request
from workflows.db import read_only
from workflows.models import Rollout, SeenSignature


def _run_body() -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0TEAM",
            "channel_id": "C0PATCHES",
            "user_id": REQUESTER,
            "command": "/patch",
            "text": "run weekly",
        }
    )


async def _rollouts(bot: Bot) -> int:
    async with read_only(bot.rig.db) as session:
        return len((await session.scalars(sa.select(Rollout))).all())


async def test_a_signed_help_command_answers_with_the_help_text(bot: Bot) -> None:
    status, body = await bot.command("help", user=REQUESTER)
    assert status == 200
    assert "/patch run PLAN [--dry-run]" in body


async def test_a_wrong_signature_is_refused_and_starts_nothing(bot: Bot) -> None:
    body = _run_body()
    forged = signed_request(body, secret="not-the-secret")
    status, _ = await bot.send(body, "application/x-www-form-urlencoded", forged)
    assert status == 401
    assert await _rollouts(bot) == 0


async def test_a_timestamp_more_than_five_minutes_old_is_refused(bot: Bot) -> None:
    body = _run_body()
    stale = signed_request(body, timestamp=int(time.time()) - 6 * 60)
    status, _ = await bot.send(body, "application/x-www-form-urlencoded", stale)
    assert status == 401
    assert await _rollouts(bot) == 0


async def test_a_replayed_request_is_refused_and_runs_nothing_again(bot: Bot) -> None:
    body = _run_body()
    headers = signed_request(body)
    status, text = await bot.send(body, "application/x-www-form-urlencoded", headers)
    assert status == 200 and "scheduled" in text
    assert await _rollouts(bot) == 1
    status, _ = await bot.send(body, "application/x-www-form-urlencoded", headers)
    assert status == 401
    assert await _rollouts(bot) == 1
    async with read_only(bot.rig.db) as session:
        seen = (await session.scalars(sa.select(SeenSignature))).all()
    assert [s.signature for s in seen] == [headers["X-Slack-Signature"]]
