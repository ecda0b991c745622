"""What the console sends PatchGate: Slack's request shapes, signed as Slack signs them.

A recorder that checks every signature with ``slack_sdk.signature`` stands in for
``serve`` first (to read the shapes); then the real ``serve`` under ``patchgate console``
takes the console's requests and refuses a forged one.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.console.page import build_page_app
from bot.console.relay import Relay
from bot.console.workspace import Workspace
from tests.console.conftest import ALICE, OPERATOR, PATCHING, Console, gate_message

SECRET = "console-test-signing-secret"


class Recorder:
    """Takes Slack requests, keeps those whose signature verifies; answers ``reply``."""

    def __init__(self) -> None:
        self.verifier = SignatureVerifier(SECRET)
        self.bodies: list[tuple[str, str]] = []  # content type, body
        self.reply: Any = None

    async def events(self, request: web.Request) -> web.Response:
        body = await request.text()
        if not self.verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        self.bodies.append((request.content_type, body))
        if self.reply is None:
            return web.Response(status=200)
        return web.json_response(self.reply)

    def payload(self) -> dict[str, Any]:
        kind, body = self.bodies[-1]
        assert kind == "application/x-www-form-urlencoded"
        data: dict[str, Any] = json.loads(urllib.parse.parse_qs(body)["payload"][0])
        return data


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[tuple[Workspace, Relay, Recorder]]:
    recorder = Recorder()
    serve_app = web.Application()
    serve_app.router.add_post("/slack/events", recorder.events)
    serve_runner = web.AppRunner(serve_app)
    await serve_runner.setup()
    serve_site = web.TCPSite(serve_runner, "127.0.0.1", 0)
    await serve_site.start()
    serve_port = serve_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ws = Workspace(token="xoxb-t")
    relay = Relay(
        ws, events_url=f"http://127.0.0.1:{serve_port}/slack/events", secret=SECRET, page_url=""
    )
    page = web.AppRunner(build_page_app(ws, relay))
    await page.setup()
    site = web.TCPSite(page, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    relay.page_url = f"http://127.0.0.1:{port}"
    yield ws, relay, recorder
    await relay.close()
    await page.cleanup()
    await serve_runner.cleanup()


def gate_blocks() -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Approval needed"}},
        {
            "type": "actions",
            "block_id": "gate_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "gate_approve",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": '{"rollout_id":1,"gate_id":1}',
                }
            ],
        },
    ]


async def test_a_slash_command_is_a_signed_form_post_and_its_answer_is_ephemeral(
    rig: tuple[Workspace, Relay, Recorder],
) -> None:
    ws, relay, recorder = rig
    recorder.reply = {"text": "Rollout #1 scheduled", "response_type": "ephemeral"}
    answer = await relay.command(OPERATOR, PATCHING, "run weekly")
    assert answer.status == 200
    kind, body = recorder.bodies[-1]
    form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
    assert kind == "application/x-www-form-urlencoded"
    assert form["command"] == "/patch" and form["text"] == "run weekly"
    assert form["user_id"] == OPERATOR and form["channel_id"] == PATCHING
    assert form["trigger_id"] and form["response_url"].startswith(relay.page_url)
    assert [e["text"] for e in ws.ephemeral if e["user"] == OPERATOR] == [
        "/patch run weekly",
        "Rollout #1 scheduled",
    ]
    assert ws.messages == {}


async def test_a_button_click_is_block_actions_with_the_documented_fields(
    rig: tuple[Workspace, Relay, Recorder],
) -> None:
    ws, relay, recorder = rig
    msg = ws.post(PATCHING, {"text": "gate", "blocks": gate_blocks()})
    await relay.click_message(ALICE, PATCHING, msg["ts"], "gate_actions", "gate_approve")
    p = recorder.payload()
    assert p["type"] == "block_actions"
    assert p["user"]["id"] == ALICE and p["team"]["id"] and p["api_app_id"]
    assert p["channel"]["id"] == PATCHING
    assert p["container"] == {
        "type": "message",
        "message_ts": msg["ts"],
        "channel_id": PATCHING,
        "is_ephemeral": False,
    }
    assert p["message"]["ts"] == msg["ts"] and p["message"]["blocks"] == gate_blocks()
    assert p["trigger_id"] in ws.triggers and p["response_url"]
    (action,) = p["actions"]
    assert action["action_id"] == "gate_approve" and action["block_id"] == "gate_actions"
    assert action["value"] == '{"rollout_id":1,"gate_id":1}' and action["type"] == "button"

    # what the app posts to the response_url replaces the message, as Slack does
    async with aiohttp.ClientSession() as http:
        await http.post(p["response_url"], json={"replace_original": True, "text": "approved"})
    assert ws.message(PATCHING, msg["ts"])["text"] == "approved"  # type: ignore[index]


async def test_a_modal_submission_carries_its_state_and_shows_the_errors_returned(
    rig: tuple[Workspace, Relay, Recorder],
) -> None:
    ws, relay, recorder = rig
    view = {
        "type": "modal",
        "callback_id": "gate_reject_modal",
        "private_metadata": '{"gate_id":1}',
        "blocks": [{"type": "input", "block_id": "reason", "element": {"action_id": "text"}}],
    }
    modal = ws.open_modal(ALICE, view)
    recorder.reply = {"response_action": "errors", "errors": {"reason": "A reason, please."}}
    empty = {"reason": {"text": {"type": "plain_text_input", "value": None}}}
    await relay.submit(ALICE, modal.id, empty)
    p = recorder.payload()
    assert p["type"] == "view_submission" and p["user"]["id"] == ALICE
    assert p["view"]["callback_id"] == "gate_reject_modal"
    assert p["view"]["private_metadata"] == '{"gate_id":1}'
    assert p["view"]["state"] == {"values": empty}
    assert ws.modals[ALICE][0].errors == {"reason": "A reason, please."}

    recorder.reply = None  # an empty 200: the modal closes
    filled = {"reason": {"text": {"type": "plain_text_input", "value": "CVE fix breaks TLS"}}}
    await relay.submit(ALICE, modal.id, filled)
    assert recorder.payload()["view"]["state"]["values"] == filled
    assert ws.modals[ALICE] == []


async def test_opening_app_home_is_an_app_home_opened_event(
    rig: tuple[Workspace, Relay, Recorder],
) -> None:
    _, relay, recorder = rig
    await relay.open_home(ALICE)
    kind, body = recorder.bodies[-1]
    event = json.loads(body)
    assert kind == "application/json" and event["type"] == "event_callback"
    assert event["event"]["type"] == "app_home_opened" and event["event"]["user"] == ALICE
    assert event["event"]["tab"] == "home"


async def test_the_page_refuses_a_cross_site_form_post(
    rig: tuple[Workspace, Relay, Recorder],
) -> None:
    _, relay, recorder = rig
    body = json.dumps({"user": OPERATOR, "channel": PATCHING, "text": "run weekly"})
    async with aiohttp.ClientSession() as http:
        url = f"{relay.page_url}/console/command"
        async with http.post(url, data=body, headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
    assert recorder.bodies == []


# --- the real serve under patchgate console -------------------------------------------------


def serve_url(console: Console) -> str:
    found = re.search(r"HTTP server listening on 127\.0\.0\.1:(\d+)", console.log.read_text())
    assert found, console.log.read_text()
    return f"http://127.0.0.1:{found.group(1)}/slack/events"


def post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(request) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_takes_the_consoles_signed_requests_and_refuses_a_forged_one(
    console: Console, tmp_path: Path
) -> None:
    events = serve_url(console)
    form = {
        "team_id": "T0CONSOLE",
        "channel_id": PATCHING,
        "user_id": OPERATOR,
        "command": "/patch",
        "text": "run weekly",
        "response_url": "http://127.0.0.1:9/",
        "trigger_id": "1.2.3",
    }
    body = urllib.parse.urlencode(form)
    ts = str(int(time.time()))
    forged = SignatureVerifier("not-the-secret").generate_signature(timestamp=ts, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(forged),
    }
    assert post(events, body, headers) == 401
    assert post(events, body, {"Content-Type": headers["Content-Type"]}) == 401
    time.sleep(1)
    assert console.messages() == []  # no rollout was started

    assert console.act("command", user=OPERATOR, channel=PATCHING, text="run weekly")["ok"]
    assert console.wait("the rollout's gate", lambda: gate_message(console))
