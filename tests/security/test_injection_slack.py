"""Hostile /patch texts through the real Slack app (signed requests, the emulator, the
recording fleet): every one gets an answer (never a 500), no rollout, request or
exception is created from it, and after the engine has run nothing touched a host."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import HOSTILE
from tests.slack.conftest import Bot
from tests.slack.conftest import bot as bot  # the fixtures
from tests.slack.conftest import slack_api as slack_api
from workflows.models import HostException, Request, Rollout

PWNED = "touch /tmp/pg-pwned"
TEXTS = (
    f"run weekly; {PWNED}", f"run 'weekly; {PWNED}'", f"run weekly$({PWNED})", "run --foo",
    "run -- weekly --dry-run x", f"run weekly\n{PWNED}", f"run `{PWNED}`", "run wéekly",
    f"hosts 'group:dev; {PWNED}'", "hosts host:$(id)", "hosts --foo", "hosts group:dev\nid",
    f"exception 'dev-01; {PWNED}' --package demo-app", "exception dev-01 --package 'x$(id)'",
    "exception -oProxyCommand=id", "exception dev-01 --package --foo",
    "approve 1; id", "approve '1 --hash x'", "pause 1`id`", "abort $(id)", "resume --foo",
    "status --foo", "status 'a b'", "status \u202e1", f"reject 1 {PWNED}", "'", '"', "\\",
    "run weekly --at '$(id)'", "freeze until '$(id)' x", f"windows weekly;{PWNED}",
)  # fmt: skip
OPERATOR = "U0REQUEST"


async def _nothing_created(bot: Bot) -> None:
    async with bot.rig.db.engine.connect() as conn:
        for model in (Rollout, Request, HostException):
            count = await conn.scalar(sa.select(sa.func.count()).select_from(model))
            assert count == 0, model.__name__


async def test_hostile_slack_texts_are_answered_and_change_nothing(bot: Bot) -> None:
    texts = list(dict.fromkeys(TEXTS))  # a text sent twice would be a replay (401)

    words = st.sampled_from(
        ("run", "hosts", "exception", "status", "approve", "pause", "--package", "weekly",
         "dev-01", "group:dev")
    )  # fmt: skip
    shell = set(";$`|&\n'\"\\")

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        st.lists(st.one_of(words, st.sampled_from(HOSTILE)), min_size=1, max_size=5).filter(
            lambda ws: any(set(w) & shell for w in ws)  # never a plain valid command
        )
    )
    def collect(parts: list[str]) -> None:
        texts.append(" ".join(parts))

    collect()
    for text in dict.fromkeys(texts):
        if "\x00" in text:
            continue
        status, body = await bot.command(text, user=OPERATOR)
        assert status == 200, (text, body)
        # an operator's /patch exception opens the form (validated on submission) and
        # acks with no text; everything else answers in words
        assert body.strip() or text.startswith("exception"), text
    await bot.deliver()
    await _nothing_created(bot)
    assert bot.rig.executor.calls == []
    await bot.rig.engine().run_until_idle()
    assert bot.rig.executor.calls == []  # no host was asked to do anything
