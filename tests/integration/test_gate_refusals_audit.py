"""A decision by rollout number on a rollout that does not exist (issue 9, item 3).

``/patch approve 999``, ``/patch reject 999 REASON``, ``patchgate rollout approve 999``
and ``patchgate rollout reject 999`` (through serve's API with a token) must be refused
with a clear message, audited as a ``gate.refused`` event with ``gate_id`` null (as when
the rollout has no open gate), and change nothing else. The rule lives in
``workflows.gates.refuse_without_open_gate``; the event does not carry the number in its
``rollout_id`` column (a later rollout may get it) but in its data and reason.

The faces (signed slash commands through the real app, the CLI as a real process) and
the before/after snapshot are those of ``tests/slack/test_gate_abuse.py``.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.enginekit import APPROVER_1
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import Bot, bot, slack_api  # noqa: F401  (fixtures)
from tests.slack.test_gate_abuse import (
    Answer,
    Faces,
    audit_mark,
    events_since,
    faces,  # noqa: F401  (fixture)
    reach_the_gate,
    snapshot,
)
from workflows import audit
from workflows.db import read_only, unit_of_work
from workflows.gates import Actor, refuse_without_open_gate
from workflows.models import Event

MISSING = 999
SAYS = f"rollout {MISSING} does not exist"


async def refused_audited_unchanged(bot: Bot, attempt: object, *, path: str) -> Answer:  # noqa: F811
    """The refusal is said, audited once (gate and rollout null, the number in the data),
    and no other table changes."""
    before, mark = await snapshot(bot), await audit_mark(bot)
    answer: Answer = await attempt  # type: ignore[misc]
    assert SAYS in answer.text.lower(), answer  # "Rollout 999 does not exist." on Slack
    if path == "cli":
        assert answer.exit_code == 1, answer
        assert answer.text.startswith("patchgate: ") and "\n" not in answer.text, answer
    else:
        assert answer.exit_code is None and answer.text.startswith(":no_entry:"), answer
    events = await events_since(bot, mark)
    if path == "cli":  # the token's use first
        assert events[0][:2] == ("token.used", APPROVER_1), events
        events = events[1:]
    assert len(events) == 1, events
    ((kind, who, data),) = events
    assert (kind, who) == ("gate.refused", APPROVER_1), events
    assert data == {
        "gate_id": None,
        "rollout_id": MISSING,
        "reason": SAYS,
        "source": "api" if path == "cli" else "slack",
    }, data
    async with read_only(bot.rig.db) as session:
        row = await session.scalar(sa.select(Event).order_by(Event.id.desc()).limit(1))
    assert row is not None and row.rollout_id is None, "a later rollout 999 inherits nothing"
    assert await snapshot(bot) == before, "a refusal changed state"
    result = await audit.verify_database(bot.rig.db)
    assert result.count > 0
    return answer


async def test_the_domain_refuses_and_audits_a_decision_on_a_rollout_that_does_not_exist(
    bot: Bot,  # noqa: F811
    slack_api: SlackEmulator,  # noqa: F811
) -> None:
    await reach_the_gate(bot, slack_api)  # some other rollout exists, with an open gate
    before, mark = await snapshot(bot), await audit_mark(bot)
    async with unit_of_work(bot.rig.db) as session:
        outcome = await refuse_without_open_gate(
            session,
            rollout_id=MISSING,
            actor=Actor(user_id=APPROVER_1, source="cli"),
            now=bot.rig.clock.now(),
        )
    assert (outcome.accepted, outcome.message, outcome.gate_state) == (False, SAYS, None)
    events = await events_since(bot, mark)
    assert events == [
        (
            "gate.refused",
            APPROVER_1,
            {"gate_id": None, "rollout_id": MISSING, "reason": SAYS, "source": "cli"},
        )
    ]
    async with read_only(bot.rig.db) as session:
        (row,) = (await session.scalars(sa.select(Event).where(Event.id > mark))).all()
    assert row.rollout_id is None
    assert json.loads(row.body)["rollout_id"] is None
    assert await snapshot(bot) == before


@pytest.mark.parametrize(
    "text",
    [f"approve {MISSING}", f"approve {MISSING} abcdef0123", f"reject {MISSING} not this one"],
)
async def test_a_slash_decision_on_a_rollout_that_does_not_exist_is_refused_and_audited(
    bot: Bot,  # noqa: F811
    slack_api: SlackEmulator,  # noqa: F811
    faces: Faces,  # noqa: F811
    text: str,
) -> None:
    await reach_the_gate(bot, slack_api)
    await refused_audited_unchanged(bot, faces.command(text, user=APPROVER_1), path="slash")


@pytest.mark.parametrize(
    "args",
    [
        ("rollout", "approve", str(MISSING), "--hash", "abcdef0123"),
        ("rollout", "reject", str(MISSING), "--reason", "not this one"),
    ],
    ids=["approve", "reject"],
)
async def test_a_cli_decision_on_a_rollout_that_does_not_exist_is_refused_and_audited(
    bot: Bot,  # noqa: F811
    slack_api: SlackEmulator,  # noqa: F811
    faces: Faces,  # noqa: F811
    args: tuple[str, ...],
) -> None:
    await reach_the_gate(bot, slack_api)
    await refused_audited_unchanged(bot, faces.cli(*args, user=APPROVER_1), path="cli")
