"""`patchgate serve` as a real process in Socket Mode (PATCHGATE_SLACK_APP_TOKEN set, no
signing secret, no /slack/events): it connects to the Socket Mode emulator through
apps.connections.open, answers a slash command and a click over the socket, persists what
they ask, and reconnects after the socket drops."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from bot.slack.approvals.ids import GateAction
from tests.e2e.harness import OPERATOR, ServeProcess, base_env, migrate
from tests.fakes.slack_api import SlackEmulator
from tests.fakes.slack_socket import SocketEmulator, button_click, slash_command
from tests.slack.conftest import TOKEN
from tests.slack.conftest import slack_api as slack_api  # the fixture
from tests.slack.test_socket_mode import socket as socket  # the fixture
from workflows.db import create_database, read_only
from workflows.models import Event, Rollout

CHANNEL = "C0123456789"  # examples/plans/weekly.yml


async def _approve_value(slack_api: SlackEmulator, *, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for message in slack_api.posted(CHANNEL):
            for block in message["blocks"]:
                if block["type"] == "actions":
                    return str(block["elements"][0]["value"])
        await asyncio.sleep(0.2)
    raise AssertionError("no readiness message with buttons")


async def _refusals(url: str) -> list[tuple[str | None, str]]:
    db = create_database(url)
    try:
        async with read_only(db) as session:
            rows = await session.scalars(sa.select(Event).where(Event.kind == "gate.refused"))
            return [(e.actor, e.body) for e in rows]
    finally:
        await db.dispose()


def _post_events(port: int) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events", data=b"{}", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def _rollouts(url: str) -> list[tuple[str, str, str]]:
    db = create_database(url)
    try:
        async with read_only(db) as session:
            rows = (await session.scalars(sa.select(Rollout))).all()
            return [(r.plan_name, r.requested_by, r.source) for r in rows]
    finally:
        await db.dispose()


async def test_serve_in_socket_mode_answers_and_persists_over_the_socket_and_reconnects(
    tmp_path: Path, slack_api: SlackEmulator, socket: SocketEmulator
) -> None:
    slack_api.channels.add(CHANNEL)
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    await asyncio.to_thread(migrate, url, tmp_path)
    env = base_env(
        url,
        PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
        PATCHGATE_SLACK_APP_TOKEN=slack_api.app_token,
        PATCHGATE_SLACK_API_URL=slack_api.url,
    )
    with ServeProcess(env, cwd=tmp_path) as serve:
        await asyncio.to_thread(serve.wait_ready)
        await socket.wait_connected(within=30)
        assert await asyncio.to_thread(_post_events, serve.port) == 404, "no HTTP endpoint"

        ack = await socket.request(
            "slash_commands", slash_command("help", user="U0SOMEONE", channel=CHANNEL)
        )
        assert "/patch run PLAN [--dry-run]" in ack["payload"]["text"], serve.log()

        await socket.drop()
        await socket.wait_connected(2, within=30)
        ack = await socket.request(
            "slash_commands", slash_command("run weekly", user=OPERATOR, channel=CHANNEL)
        )
        assert "scheduled" in ack["payload"]["text"], serve.log()
        assert await _rollouts(url) == [("weekly", OPERATOR, "slack")]
        # The leader's engine picks it up; the parent message goes out through the outbox.
        await slack_api.wait_for("chat.postMessage", within=30)
        parent = slack_api.posted(CHANNEL)[0]
        assert "weekly" in json.dumps(parent), parent

        # A click on the readiness message's Approve button, over the socket.
        value = await _approve_value(slack_api, within=60)
        ack = await socket.request(
            "interactive",
            button_click(GateAction.APPROVE, value, user="U0NOTANAPPROVER", channel=CHANNEL),
        )
        assert not ack.get("payload"), "a click is acked with an empty body"
        (told,) = await slack_api.wait_for("chat.postEphemeral", within=30)
        assert "is not an approver" in told.params["text"], serve.log()
        assert [e[0] for e in await _refusals(url)] == ["U0NOTANAPPROVER"]
        assert socket.opened == 2
        assert serve.terminate(timeout=30) == 0
