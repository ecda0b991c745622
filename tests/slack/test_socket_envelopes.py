"""Socket Mode envelopes of shapes Slack never sends (issue 15, item 4): each is refused
(acked when it has an envelope id, audited as ``malformed_payload``) without reaching
Bolt, and the socket client goes on taking requests. Before, each raised inside slack_sdk
or Bolt, was logged with a traceback and never acked."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from bot.server import SocketMode
from bot.slack.envelopes import deeper_than, envelope_problem
from tests.enginekit import REQUESTER
from tests.fakes.slack_socket import SocketEmulator, button_click, slash_command
from tests.slack import test_socket_mode as fixtures
from tests.slack.conftest import Bot
from tests.slack.test_hostile_requests import refusals, snapshot

socket = fixtures.socket
socket_mode = fixtures.socket_mode


def cmd(**fields: Any) -> dict[str, Any]:
    return {**slash_command("help", user=REQUESTER), **fields}


def envelope(payload: Any, *, kind: str = "slash_commands", envelope_id: Any = None) -> dict:
    return {
        "envelope_id": str(uuid.uuid4()) if envelope_id is None else envelope_id,
        "type": kind,
        "payload": payload,
        "accepts_response_payload": True,
    }


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE: dict[str, dict[str, Any]] = {
    "payload is a list": envelope([]),
    "payload is a number": envelope(10**30),
    "payload is text": envelope("help"),
    "payload is null": envelope(None),
    "envelope_id is a huge number": envelope(
        slash_command("help", user=REQUESTER), envelope_id=10**40
    ),
    "envelope type unknown": envelope(cmd(), kind="surprise"),
    "payload nested 150 deep": envelope(
        {**slash_command("help", user=REQUESTER), "x": nested(150)}
    ),
    "slash command text is a number": envelope(
        {**slash_command("help", user=REQUESTER), "text": 10**30}
    ),
    "user_id is an object": envelope(
        {**slash_command("help", user=REQUESTER), "user_id": {"id": 1}}
    ),
    "actions is null": envelope(
        {**button_click("gate_approve", "{}", user=REQUESTER), "actions": None}, kind="interactive"
    ),
    "view is a list": envelope(
        {"type": "view_submission", "user": {"id": REQUESTER}, "view": []}, kind="interactive"
    ),
}


async def until_refused(bot: Bot, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        events = await refusals(bot)
        if len(events) >= count:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} refusals were not audited: {await refusals(bot)}")


async def still_answers(socket: SocketEmulator) -> None:
    ack = await socket.request("slash_commands", slash_command("help", user=REQUESTER))
    assert "/patch run PLAN" in ack["payload"]["text"]


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_an_envelope_of_a_shape_slack_never_sends_is_refused_and_the_socket_goes_on(
    bot: Bot, socket: SocketEmulator, socket_mode: SocketMode, case: str
) -> None:
    before = await snapshot(bot)
    message = HOSTILE[case]
    await socket.send_raw(json.dumps(message))
    (event,) = await until_refused(bot, 1)
    assert event["reason"] == "malformed_payload" and "Socket Mode envelope" in event["detail"]
    if isinstance(message["envelope_id"], str):
        ack = await socket.ack(message["envelope_id"])
        assert "payload" not in ack  # acked empty: nothing was run
    else:
        assert socket.acks == {}
    assert await snapshot(bot) == before
    await still_answers(socket)


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"envelope_id": "e1", "type": "slash_commands", "payload": '
        + "[" * 5000
        + "]" * 5000
        + "}",
        '{"envelope_id": "e2", "type": "slash_commands", "payload": {"text": ' + "9" * 5000 + "}}",
        "[1, 2]",
    ],
    ids=["not json", "nested 5000 deep", "a 5000-digit number", "a list"],
)
async def test_a_message_slack_sdk_cannot_parse_is_dropped_and_the_socket_goes_on(
    bot: Bot, socket: SocketEmulator, socket_mode: SocketMode, raw: str
) -> None:
    before = await snapshot(bot)
    await socket.send_raw(raw)
    await still_answers(socket)
    assert await snapshot(bot) == before
    assert socket.acks.keys().isdisjoint({"e1", "e2"})


def test_slacks_own_envelopes_pass_the_check() -> None:
    assert envelope_problem(envelope(slash_command("run weekly", user=REQUESTER))) is None
    click = button_click("gate_approve", '{"rollout_id": 1}', user=REQUESTER)
    assert envelope_problem(envelope(click, kind="interactive")) is None
    assert envelope_problem({"type": "hello", "num_connections": 1}) is None
    assert envelope_problem({"type": "disconnect", "reason": "refresh_requested"}) is None


def test_depth_is_counted_without_recursion() -> None:
    assert not deeper_than(nested(100), 100)
    assert deeper_than(nested(101), 100)
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert deeper_than(deep, 100)
