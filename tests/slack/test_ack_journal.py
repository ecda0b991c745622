"""Approve clicks are journaled before the ack and decided after it, exactly once:
a click whose process died after the ack is decided by the next runtime's sweep, a
replay of it is refused, and two replicas racing for one row decide it once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp

from bot.slack.app import build_bolt_app
from bot.slack.approvals.ids import GateAction
from bot.slack.journal import APPROVE, Journal
from tests.enginekit import APPROVER_1, OUTSIDER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN, Bot, make_deps, signed_request
from tests.slack.test_rollout_flow import buttons, start_and_reach_the_gate
from workflows.db import Database, create_database, read_only
from workflows.models import Approval, Event, Gate, SeenSignature

NOW = dt.timedelta(0)


def click_body(value: str, *, user: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "channel": {"id": "C0PATCHES"},
        "container": {"type": "message", "channel_id": "C0PATCHES", "message_ts": "1.1"},
        "message": {"ts": "1.1"},
        "trigger_id": f"trigger-{user}",
        "action_ts": str(time.time_ns()),
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [
            {
                "action_id": GateAction.APPROVE.value,
                "block_id": "gate_actions",
                "value": value,
                "type": "button",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


FORM = "application/x-www-form-urlencoded"


@pytest_asyncio.fixture
async def other_db(database_url: str) -> AsyncIterator[Database]:
    """A second replica's own engine (connection pool) on the same database."""
    database = create_database(database_url)
    yield database
    await database.dispose()


def replica(bot: Bot, db: Database, slack_api: SlackEmulator) -> Journal:
    """Another runtime on the same database (a restarted process, or a second replica):
    its own Bolt app, clients and Slack deps; returns its journal (what serve sweeps)."""
    deps = make_deps(bot.deps.settings, db, bot.rig, slack_api)
    return build_bolt_app(deps, signing_secret=SECRET, token=TOKEN).journal


def stop_after_ack(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """A journaled click's processing after its ack (``Journal.accept``) waits for the
    returned event (never set: the process died right after its ack), then runs as usual.
    Sweeps (another runtime, a restart) process rows directly and are not held."""
    release = asyncio.Event()
    real = Journal._after_ack

    async def stuck(self: Journal, journaled: Any, payload: dict[str, Any]) -> None:
        await release.wait()
        await real(self, journaled, payload)

    monkeypatch.setattr(Journal, "_after_ack", stuck)
    return release


async def listeners_done() -> None:
    await asyncio.gather(*list(Journal.tasks))


def kill_listeners() -> None:
    for task in list(Journal.tasks):
        task.cancel()


async def journal_rows(db: Database) -> list[tuple[str | None, bool]]:
    async with read_only(db) as session:
        rows = await session.execute(
            sa.select(SeenSignature.kind, SeenSignature.processed_at).where(
                SeenSignature.kind.is_not(None)
            )
        )
        return [(kind, processed is not None) for kind, processed in rows]


async def state(db: Database) -> tuple[list[tuple[str, str]], str, list[str]]:
    async with read_only(db) as session:
        votes = [(v.user_id, v.decision) for v in await session.scalars(sa.select(Approval))]
        gate = await session.scalar(sa.select(Gate))
        kinds = list(
            await session.scalars(
                sa.select(Event.kind).where(Event.kind.like("gate.%")).order_by(Event.id)
            )
        )
    assert gate is not None
    return votes, gate.state, kinds


def ephemerals(slack_api: SlackEmulator) -> list[str]:
    return [c.params["text"] for c in slack_api.called("chat.postEphemeral")]


async def decided_once(bot: Bot, slack_api: SlackEmulator, events_before: list[str]) -> None:
    """APPROVER_1's click approved the gate with one vote, one answer, its row processed."""
    votes, gate_state, events = await state(bot.rig.db)
    assert votes == [(APPROVER_1, "approve")] and gate_state == "approved"
    assert events[len(events_before) :] == ["gate.vote", "gate.state"], events
    await slack_api.wait_for("chat.postEphemeral", 1)
    await asyncio.sleep(0.2)  # a second answer, if any, would be posted by now
    assert len(ephemerals(slack_api)) == 1
    assert await journal_rows(bot.rig.db) == [(APPROVE, True)]


async def test_a_click_acked_by_a_process_that_then_died_is_decided_once_by_the_next_runtime(
    bot: Bot,
    slack_api: SlackEmulator,
    other_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    approve = buttons(await start_and_reach_the_gate(bot, slack_api))[GateAction.APPROVE]
    events_before = (await state(bot.rig.db))[2]
    restarted = replica(bot, other_db, slack_api)  # built now: it runs the real processing
    stop_after_ack(monkeypatch)
    body = click_body(approve, user=APPROVER_1)
    headers = signed_request(body)

    status, answer = await bot.send(body, FORM, headers)
    assert status == 200 and answer == "", "acked at once, with no body"
    assert await journal_rows(bot.rig.db) == [(APPROVE, False)], "journaled before the ack"
    kill_listeners()  # the process dies between the ack and the decision
    assert await state(bot.rig.db) == ([], "open", events_before), "nothing decided yet"
    assert ephemerals(slack_api) == []
    again = replica(bot, bot.rig.db, slack_api)

    assert await restarted.sweep(older_than=NOW) == 1
    votes, gate_state, events = await state(bot.rig.db)
    assert votes == [(APPROVER_1, "approve")] and gate_state == "approved"
    assert events[len(events_before) :] == ["gate.vote", "gate.state"], events
    (told,) = await slack_api.wait_for("chat.postEphemeral", 1)
    assert "approved" in told.params["text"] and told.params["user"] == APPROVER_1
    assert await journal_rows(bot.rig.db) == [(APPROVE, True)]

    # Once: sweeping again (the leader's periodic sweep, another restart) does nothing.
    assert await restarted.sweep(older_than=NOW) == 0
    assert await again.sweep(older_than=NOW) == 0
    assert await state(bot.rig.db) == (votes, "approved", events)
    assert len(ephemerals(slack_api)) == 1

    # The same signed request sent again is a replay, to either process.
    monkeypatch.undo()
    status, answer = await bot.send(body, FORM, headers)
    assert status == 401 and "replay" in answer
    assert await state(bot.rig.db) == (votes, "approved", events)
    assert len(ephemerals(slack_api)) == 1


async def test_a_replayed_click_is_refused_and_decided_nothing_twice(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    approve = buttons(await start_and_reach_the_gate(bot, slack_api))[GateAction.APPROVE]
    body = click_body(approve, user=OUTSIDER)
    headers = signed_request(body)
    status, _ = await bot.send(body, FORM, headers)
    assert status == 200
    (told,) = await slack_api.wait_for("chat.postEphemeral", 1)
    assert "is not an approver" in told.params["text"]
    await listeners_done()
    after_first = await state(bot.rig.db)
    assert after_first[0] == [] and after_first[2].count("gate.refused") == 1

    status, answer = await bot.send(body, FORM, headers)
    assert status == 401 and "replay" in answer
    await listeners_done()
    assert await state(bot.rig.db) == after_first, "the refusal is audited once"
    assert len(ephemerals(slack_api)) == 1
    assert await journal_rows(bot.rig.db) == [(APPROVE, True)]


async def test_two_replicas_racing_for_one_journaled_click_decide_it_once(
    bot: Bot,
    slack_api: SlackEmulator,
    other_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    approve = buttons(await start_and_reach_the_gate(bot, slack_api))[GateAction.APPROVE]
    events_before = (await state(bot.rig.db))[2]
    other = replica(bot, other_db, slack_api)
    release = stop_after_ack(monkeypatch)
    status, _ = await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
    assert status == 200
    assert await journal_rows(bot.rig.db) == [(APPROVE, False)]

    # This replica decides after its ack while the other one sweeps the same row.
    release.set()
    _, swept = await asyncio.gather(listeners_done(), other.sweep(older_than=NOW))
    assert swept in (0, 1)
    await decided_once(bot, slack_api, events_before)


async def test_two_replicas_sweeping_a_dead_process_row_at_once_decide_it_once(
    bot: Bot,
    slack_api: SlackEmulator,
    other_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    approve = buttons(await start_and_reach_the_gate(bot, slack_api))[GateAction.APPROVE]
    events_before = (await state(bot.rig.db))[2]
    first, second = replica(bot, bot.rig.db, slack_api), replica(bot, other_db, slack_api)
    stop_after_ack(monkeypatch)
    status, _ = await bot.click(GateAction.APPROVE, approve, user=APPROVER_1)
    assert status == 200
    kill_listeners()
    await asyncio.gather(first.sweep(older_than=NOW), second.sweep(older_than=NOW))
    await decided_once(bot, slack_api, events_before)


async def test_requests_answered_before_the_ack_are_not_journaled(bot: Bot) -> None:
    status, body = await bot.command("help", user=APPROVER_1)
    assert status == 200 and "/patch" in body
    assert await journal_rows(bot.rig.db) == []


async def test_a_click_takes_the_one_route_through_bolt_journaled_before_its_ack(
    bot: Bot, slack_api: SlackEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request is dispatched by Bolt, clicks included: the guard middleware
    answers the Approve click once its journal row is durable (nothing decided yet),
    and the journal decides it once, after the ack."""
    value = buttons(await start_and_reach_the_gate(bot, slack_api))[GateAction.APPROVE]
    events_before = (await state(bot.rig.db))[2]
    dispatched: list[str] = []
    real = AsyncApp.async_dispatch

    async def counting(self: AsyncApp, req: Any) -> Any:
        dispatched.append(req.body.get("type") or req.body.get("command") or "?")
        return await real(self, req)

    monkeypatch.setattr(AsyncApp, "async_dispatch", counting)
    release = stop_after_ack(monkeypatch)
    status, text = await bot.click(GateAction.APPROVE.value, value, user=APPROVER_1)
    assert (status, text) == (200, "")
    assert dispatched == ["block_actions"], "the click went through Bolt"
    assert await journal_rows(bot.rig.db) == [(APPROVE, False)], "journaled before the ack"
    assert await state(bot.rig.db) == ([], "open", events_before), "decided after the ack"
    release.set()
    await listeners_done()
    await decided_once(bot, slack_api, events_before)
    status, _ = await bot.command("help", user=APPROVER_1)  # the same route
    assert status == 200 and dispatched == ["block_actions", "/patch"]
