"""A journaled request that cannot be processed goes dead after ``MAX_TRIES`` failed
attempts, audited, instead of being retried by every sweep forever (issue 15, item 4)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from bot.slack.approvals.ids import GateAction
from bot.slack.journal import DEAD, MAX_TRIES, Journal
from integrations.slack.directory import DirectoryUnavailable
from tests.enginekit import APPROVER_1
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot
from tests.slack.test_ack_journal import replica
from tests.slack.test_hostile_requests import refusals
from tests.slack.test_rollout_flow import buttons, start_and_reach_the_gate
from workflows.db import read_only
from workflows.models import SeenSignature

NOW = dt.timedelta(0)  # sweep rows however recent


async def journal_state(bot: Bot) -> list[tuple[int, bool]]:
    async with read_only(bot.rig.db) as session:
        rows = await session.execute(
            sa.select(SeenSignature.tries, SeenSignature.processed_at).where(
                SeenSignature.kind.is_not(None)
            )
        )
        return [(tries, processed is not None) for tries, processed in rows]


async def click_failing_with(
    bot: Bot, slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> Journal:
    """An Approve click whose processing raises ``error`` every time; returns a sweeper."""
    message = await start_and_reach_the_gate(bot, slack_api)

    async def broken(self: Journal, signature: str, kind: str, payload: dict[str, Any]) -> None:
        raise error

    monkeypatch.setattr(Journal, "process", broken)
    value = buttons(message)[GateAction.APPROVE]
    status, _ = await bot.click(GateAction.APPROVE, value, user=APPROVER_1)
    assert status == 200
    await asyncio.gather(*list(Journal.tasks))
    return replica(bot, bot.rig.db, slack_api)


async def test_a_journaled_click_that_keeps_failing_goes_dead_audited(
    bot: Bot, slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = RuntimeError("a payload this processor cannot take")
    sweeper = await click_failing_with(bot, slack_api, monkeypatch, error)
    assert await journal_state(bot) == [(1, False)], "the try after the ack counts"
    for tries in range(2, MAX_TRIES):
        assert await sweeper.sweep(older_than=NOW) == 1
        assert await journal_state(bot) == [(tries, False)]
    assert await sweeper.sweep(older_than=NOW) == 1
    assert await journal_state(bot) == [(MAX_TRIES, True)], "given up"
    assert await sweeper.sweep(older_than=NOW) == 0
    (event,) = await refusals(bot, DEAD)
    assert event["kind"] == "gate.approve" and event["tries"] == MAX_TRIES
    assert "RuntimeError: a payload this processor cannot take" in event["error"]


async def test_a_journaled_click_failing_through_an_outage_is_never_given_up(
    bot: Bot, slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = DirectoryUnavailable("cannot read user group S0123: ratelimited")
    sweeper = await click_failing_with(bot, slack_api, monkeypatch, error)
    for _ in range(MAX_TRIES + 2):
        assert await sweeper.sweep(older_than=NOW) == 1
    assert await journal_state(bot) == [(0, False)], "still waiting for the sweep"
    assert await refusals(bot, DEAD) == []
