"""Socket Mode through the real app: slack_sdk's aiohttp SocketModeClient (what Bolt's
AsyncSocketModeHandler uses) against the Socket Mode emulator. Envelopes are acked over
the socket with their envelope_id and persist exactly what the HTTP path persists; the
client reconnects when the socket drops or Slack asks it to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web

from bot.server import SocketMode
from bot.slack.app import build_bolt_app
from bot.slack.approvals.ids import GateAction
from tests.enginekit import APPROVER_1, OUTSIDER, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.fakes.slack_socket import SocketEmulator, button_click, slash_command
from tests.slack.conftest import TOKEN, Bot
from tests.slack.test_rollout_flow import GROUP, buttons, readiness, two_ring_plan
from workflows.db import read_only
from workflows.models import Approval, Event, Gate, Rollout, SeenSignature

OTHER_OUTSIDER = "U0OUTSIDE2"


@pytest_asyncio.fixture
async def socket(slack_api: SlackEmulator) -> AsyncIterator[SocketEmulator]:
    emulator = SocketEmulator()
    runner = web.AppRunner(emulator.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    emulator.url = f"ws://127.0.0.1:{port}/link"
    slack_api.socket = emulator
    try:
        yield emulator
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def socket_mode(
    bot: Bot, slack_api: SlackEmulator, socket: SocketEmulator
) -> AsyncIterator[SocketMode]:
    """The same deps as the HTTP app (one database), dispatched from the socket instead.
    No signing secret, as ``serve`` builds it in Socket Mode."""
    bolt = build_bolt_app(bot.deps, signing_secret="", token=TOKEN)
    runner = SocketMode(bolt, slack_api.app_token, ping_interval=1.0)
    await runner.start()
    try:
        await socket.wait_connected()
        yield runner
    finally:
        await runner.close()


async def _events(bot: Bot, kind: str) -> list[Event]:
    async with read_only(bot.rig.db) as session:
        return list(
            await session.scalars(sa.select(Event).where(Event.kind == kind).order_by(Event.id))
        )


async def test_a_slash_command_over_the_socket_is_acked_with_its_reply_and_persisted(
    bot: Bot, slack_api: SlackEmulator, socket: SocketEmulator, socket_mode: SocketMode
) -> None:
    (opened,) = slack_api.called("apps.connections.open")  # with the app-level token
    assert opened.response is not None and opened.response["ok"] is True
    assert socket.opened == 1 and socket.connected == 1

    ack = await socket.request("slash_commands", slash_command("run weekly", user=REQUESTER))
    assert set(ack) >= {"envelope_id", "payload"}
    assert "Rollout #" in ack["payload"]["text"] and "scheduled" in ack["payload"]["text"]
    async with read_only(bot.rig.db) as session:
        rollouts = (await session.scalars(sa.select(Rollout))).all()
        seen = (await session.scalars(sa.select(SeenSignature))).all()
    assert [(r.plan_name, r.requested_by, r.state) for r in rollouts] == [
        ("weekly", REQUESTER, "scheduled")
    ]
    assert seen == [], "no signature in Socket Mode: nothing for the replay guard"

    ack = await socket.request("slash_commands", slash_command("run", user=REQUESTER))
    assert "Usage: `/patch run" in ack["payload"]["text"], "bad input: a usage message"


async def test_clicks_over_the_socket_decide_the_gate_exactly_as_clicks_over_http(
    bot: Bot, slack_api: SlackEmulator, socket: SocketEmulator, socket_mode: SocketMode
) -> None:
    two_ring_plan(bot)
    slack_api.usergroups[GROUP] = [APPROVER_1, REQUESTER]
    ack = await socket.request("slash_commands", slash_command("run weekly", user=REQUESTER))
    assert "scheduled" in ack["payload"]["text"]
    await bot.rig.engine().run_until_idle()
    await bot.deliver()
    approve = buttons(readiness(slack_api))[GateAction.APPROVE]

    # The same refusal through both faces: one audit event each, same shape.
    status, _ = await bot.click(GateAction.APPROVE, approve, user=OUTSIDER)
    assert status == 200
    await slack_api.wait_for("chat.postEphemeral", 1)  # over HTTP decided after the ack
    ack = await socket.request(
        "interactive", button_click(GateAction.APPROVE, approve, user=OTHER_OUTSIDER)
    )
    assert "payload" not in ack or not ack["payload"], "a click is acked with no body"
    calls = await slack_api.wait_for("chat.postEphemeral", 2)
    assert [c.params["user"] for c in calls] == [OUTSIDER, OTHER_OUTSIDER]
    assert all("is not an approver" in c.params["text"] for c in calls)
    http_refusal, socket_refusal = await _events(bot, "gate.refused")
    assert (http_refusal.actor, socket_refusal.actor) == (OUTSIDER, OTHER_OUTSIDER)
    http_data = json.loads(http_refusal.body)["data"]
    socket_data = json.loads(socket_refusal.body)["data"]
    assert http_data["source"] == "slack"
    assert http_data == {
        **socket_data,
        "reason": socket_data["reason"].replace(OTHER_OUTSIDER, OUTSIDER),
    }

    ack = await socket.request(
        "interactive", button_click(GateAction.APPROVE, approve, user=APPROVER_1)
    )
    assert ack["envelope_id"]
    assert "approved" in (await slack_api.wait_for("chat.postEphemeral", 3))[2].params["text"]
    async with read_only(bot.rig.db) as session:
        gate = await session.scalar(sa.select(Gate))
        votes = (await session.scalars(sa.select(Approval))).all()
    assert gate is not None and gate.state == "approved"
    assert [(v.user_id, v.decision) for v in votes] == [(APPROVER_1, "approve")]
    await bot.rig.engine().run_until_idle()
    async with read_only(bot.rig.db) as session:
        rollout = await session.scalar(sa.select(Rollout))
    assert rollout is not None and rollout.state == "succeeded"


async def test_the_client_reconnects_when_the_socket_drops_and_when_asked_to(
    bot: Bot, slack_api: SlackEmulator, socket: SocketEmulator, socket_mode: SocketMode
) -> None:
    await socket.drop()
    await socket.wait_connected(2)
    assert socket.opened == 2, "a new URL from apps.connections.open for the new socket"
    ack = await socket.request("slash_commands", slash_command("help", user=OUTSIDER))
    assert "/patch run PLAN [--dry-run]" in ack["payload"]["text"]

    await socket.ask_to_reconnect()
    await socket.wait_connected(3)
    assert socket.opened == 3
    ack = await socket.request("slash_commands", slash_command("run weekly", user=REQUESTER))
    assert "scheduled" in ack["payload"]["text"]
    async with read_only(bot.rig.db) as session:
        assert len((await session.scalars(sa.select(Rollout))).all()) == 1


async def test_the_client_reconnects_when_the_connection_is_cut_without_a_close_frame(
    bot: Bot, slack_api: SlackEmulator, socket: SocketEmulator, socket_mode: SocketMode
) -> None:
    await socket.cut()
    # Noticed by the client's ping monitor (ping_interval is 1 s in this fixture).
    await socket.wait_connected(2, within=20)
    ack = await socket.request("slash_commands", slash_command("help", user=OUTSIDER))
    assert "/patch run PLAN [--dry-run]" in ack["payload"]["text"]


async def test_starting_while_slack_refuses_the_socket_does_not_block_and_closes_cleanly(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    assert slack_api.socket is None  # apps.connections.open answers ok: false
    bolt = build_bolt_app(bot.deps, signing_secret="", token=TOKEN)
    runner = SocketMode(bolt, slack_api.app_token, ping_interval=0.2)
    await asyncio.wait_for(runner.start(), 1.0)  # returns at once: serve goes on
    await slack_api.wait_for("apps.connections.open", 2, within=10)  # it keeps trying
    await asyncio.wait_for(runner.close(), 5.0)
    tries = len(slack_api.called("apps.connections.open"))
    await asyncio.sleep(0.6)
    assert len(slack_api.called("apps.connections.open")) == tries, "stopped trying"
