"""/patch freeze, unfreeze, windows, reload and run PLAN --at TIME: the pure parsing of
times, and each through the real app against the database the CLI writes to."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from ruamel.yaml import YAML

from bot.slack.commands.builtin import Run
from bot.slack.commands.handlers import default_registry
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import UsageError
from bot.slack.commands.schedule import FreezeCommand
from tests.enginekit import OUTSIDER, REQUESTER, plan_dict
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import DueTime, Event, Freeze, Request

REGISTRY = default_registry()


@pytest.mark.parametrize(
    ("text", "until", "reason"),
    [
        ("freeze year-end close", None, "year-end close"),
        ("freeze until in 2h db migration", "in 2h", "db migration"),
        ("freeze until 2026-01-05 06:00 Europe/Berlin x", "2026-01-05 06:00 Europe/Berlin", "x"),
        ("freeze until 2026-01-05 holiday season", "2026-01-05", "holiday season"),
        ('freeze until "2026-01-05 06:00" audit', "2026-01-05 06:00", "audit"),
    ],
)  # fmt: skip
def test_freeze_reads_the_longest_time_after_until_and_the_rest_as_the_reason(
    text: str, until: str | None, reason: str
) -> None:
    assert parse(text, REGISTRY)[1] == FreezeCommand(until, reason)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("freeze", "a freeze needs a reason"),
        ("freeze until in 2h", "a freeze needs a reason after the time"),
        ("freeze until tomorrow night audit", "bad time 'tomorrow'"),
        ("run weekly --at", "a time is missing after --at"),
        ("run weekly --dry-run --at in 2h", "--dry-run and --at do not go together"),
        ("unfreeze now", "unexpected 'now'"),
        ("windows a b", "unexpected 'b'"),
    ],
)
def test_bad_schedule_input_is_a_usage_error_naming_what_was_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(text, REGISTRY)


def test_run_at_takes_every_word_up_to_the_next_option_as_the_time() -> None:
    assert parse("run weekly --at 2026-01-05 03:00 Europe/Berlin", REGISTRY)[1] == Run(
        "weekly", False, "2026-01-05 03:00 Europe/Berlin"
    )


async def test_a_freeze_by_someone_who_is_not_an_operator_is_refused_and_audited(
    bot: Bot,
) -> None:
    status, body = await bot.command("freeze until in 2h audit", user=OUTSIDER)
    assert status == 200 and "is not an operator" in body and "ephemeral" in body
    async with read_only(bot.rig.db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Freeze)) == 0
        refused = (await session.scalars(sa.select(Event).where(Event.actor == OUTSIDER))).all()
    assert [e.kind for e in refused] == ["request.refused"]


async def test_an_operator_freezes_until_a_time_and_unfreezes(bot: Bot) -> None:
    status, body = await bot.command("freeze until in 2h db migration", user=REQUESTER)
    assert status == 200 and "Change freeze #1 in force until" in body
    async with read_only(bot.rig.db) as session:
        (row,) = (await session.scalars(sa.select(Freeze))).all()
    assert row.reason == "db migration" and row.created_by == REQUESTER
    assert row.until is not None
    until = row.until.replace(tzinfo=dt.UTC) if row.until.tzinfo is None else row.until
    assert until == bot.rig.clock.now() + dt.timedelta(hours=2)

    _, body = await bot.command("unfreeze", user=REQUESTER)
    assert "Change freeze lifted (#1)" in body
    _, body = await bot.command(" unfreeze", user=REQUESTER)  # not a replay: another body
    assert "there is no active freeze" in body


async def test_a_bad_time_gets_a_usage_message_and_writes_nothing(bot: Bot) -> None:
    status, body = await bot.command("run weekly --at 2026-13-45 02:00", user=REQUESTER)
    assert status == 200 and "bad time '2026-13-45 02:00'" in body
    assert "Usage: `/patch run PLAN [--dry-run] [--at TIME]`" in body
    _, body = await bot.command("run weekly --at 2025-01-01 02:00", user=REQUESTER)
    assert "is in the past" in body
    async with read_only(bot.rig.db) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(DueTime)) == 0


async def test_an_operator_schedules_a_one_off_run_at_a_time(bot: Bot) -> None:
    _, body = await bot.command("run weekly --at 2026-01-05 03:00 Europe/Berlin", user=OUTSIDER)
    assert "is not an operator" in body
    status, body = await bot.command(
        "run weekly --at 2026-01-05 03:00 Europe/Berlin", user=REQUESTER
    )
    assert status == 200 and "One-off run of" in body and "scheduled for" in body
    assert "#" not in json.loads(body)["text"]  # "#N" is only ever a rollout's number
    async with read_only(bot.rig.db) as session:
        (due,) = (await session.scalars(sa.select(DueTime))).all()
    at = due.due_at.replace(tzinfo=dt.UTC) if due.due_at.tzinfo is None else due.due_at
    assert due.plan_name == "weekly" and at == dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)


async def test_windows_lists_a_scheduled_plans_next_windows_and_marks_a_freeze(
    bot: Bot,
) -> None:
    plan = plan_dict(schedule={"cron": "0 3 * * *", "timezone": "UTC", "duration": "2h"})
    YAML().dump(plan, bot.deps.settings.plans_dir / "weekly.yml")
    await bot.command("freeze until 2026-01-05 12:00 UTC audit", user=REQUESTER)
    status, body = await bot.command("windows weekly", user=OUTSIDER)
    assert status == 200 and "0 3 * * * UTC, 2h" in body
    assert body.count("\\u2022") + body.count("•") == 5, body
    assert "*frozen*" in body, "the window inside the freeze is marked"
    _, body = await bot.command("windows nightly", user=OUTSIDER)
    assert "There is no plan named `nightly`" in body


async def test_reload_queues_a_request_for_the_leader_for_operators_only(bot: Bot) -> None:
    _, body = await bot.command("reload", user=OUTSIDER)
    assert "is not an operator" in body
    status, body = await bot.command("reload", user=REQUESTER)
    assert status == 200 and "Reload request #1 queued (1 plans read fine)" in body
    (bot.deps.settings.plans_dir / "broken.yml").write_text("name: [\n")
    _, body = await bot.command("reload ", user=REQUESTER)  # not a replay: another body
    assert "the plans directory does not load" in body
    async with read_only(bot.rig.db) as session:
        requests = (await session.scalars(sa.select(Request))).all()
    assert [(r.kind, r.requested_by) for r in requests] == [("reload", REQUESTER)]
