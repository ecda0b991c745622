"""Block Kit as the console's page draws it, in headless Chromium: a message with every
block type PatchGate may send (header, section text, fields and accessory, context,
divider, image, actions with button styles), a button behind a confirm dialog (Cancel
sends nothing; confirming sends one signed ``block_actions``), and an ephemeral message
seen only by its person. The page and stand-in run in a thread of this test, with a
recorder in place of ``serve``."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot.console.page import build_page_app
from bot.console.relay import Relay
from bot.console.workspace import Workspace
from tests.console.conftest import ALICE, OPERATOR, PATCHING
from tests.console.test_browser import Page, browser, shots  # noqa: F401  (fixtures)

SECRET = "blocks-test-secret"
TOKEN = "xoxb-blocks-test"

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402


class Served:
    """The page app and a signature-checking recorder on one event loop in a thread."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(20)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.text()
        if not SignatureVerifier(SECRET).is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        self.received.append(json.loads(urllib.parse.parse_qs(body)["payload"][0]))
        return web.Response()

    async def _start(self) -> None:
        serve = web.Application()
        serve.router.add_post("/slack/events", self._events)
        self.serve_runner = web.AppRunner(serve)
        await self.serve_runner.setup()
        site = web.TCPSite(self.serve_runner, "127.0.0.1", 0)
        await site.start()
        serve_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ws = Workspace(token=TOKEN)
        self.relay = Relay(
            self.ws,
            events_url=f"http://127.0.0.1:{serve_port}/slack/events",
            secret=SECRET,
            page_url="",
        )
        self.page_runner = web.AppRunner(build_page_app(self.ws, self.relay))
        await self.page_runner.setup()
        page = web.TCPSite(self.page_runner, "127.0.0.1", 0)
        await page.start()
        port = page._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.relay.page_url = self.url
        self.ws.url = f"{self.url}/api/"

    def stop(self) -> None:
        async def cleanup() -> None:
            await self.relay.close()
            await self.page_runner.cleanup()
            await self.serve_runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)


@pytest.fixture
def served() -> Iterator[Served]:
    running = Served()
    try:
        yield running
    finally:
        running.stop()


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


BLOCKS = [
    {"type": "header", "text": plain("Weekly patching")},
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Ring canary* for <@U0123ABCDE> `1422da70`"},
        "fields": [
            {"type": "mrkdwn", "text": "*Hosts*\n2"},
            {"type": "mrkdwn", "text": "*Budget*\n0"},
        ],
        "accessory": {
            "type": "button",
            "action_id": "abort",
            "text": plain("Abort"),
            "style": "danger",
            "value": "1",
            "confirm": {
                "title": plain("Abort rollout #1?"),
                "text": {"type": "mrkdwn", "text": "Hosts being patched *finish first*."},
                "confirm": plain("Abort it"),
                "deny": plain("Keep going"),
            },
        },
    },
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Patch set `1422da70`"}]},
    {
        "type": "image",
        "image_url": "data:image/gif;base64,R0lGODlhAQABAAAAACw=",
        "alt_text": "a chart",
        "title": plain("Coverage"),
    },
    {
        "type": "actions",
        "block_id": "gate_actions",
        "elements": [
            {"type": "button", "action_id": "ok", "text": plain("Approve"), "style": "primary"},
            {"type": "button", "action_id": "no", "text": plain("Reject"), "style": "danger"},
        ],
    },
]


def test_block_kit_renders_and_a_confirm_dialog_guards_its_button(
    served: Served,
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    slack = WebClient(token=TOKEN, base_url=served.ws.url)
    posted = slack.chat_postMessage(channel=PATCHING, text="Weekly patching", blocks=BLOCKS)
    slack.chat_postEphemeral(channel=PATCHING, user=ALICE, text="only for alice")
    page = Page(browser, None, shots)  # type: ignore[arg-type]
    browser.get(f"{served.url}/?as={OPERATOR}")
    msg = f'#messages .msg[data-ts="{posted["ts"]}"]'
    page.wait("the message", lambda: browser.find_elements(By.CSS_SELECTOR, msg))
    page.shot("blocks")

    def one(css: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, f"{msg} {css}")

    assert one(".block.header").text == "Weekly patching"
    section = one(".block.section")
    assert section.find_element(By.TAG_NAME, "b").text == "Ring canary"
    assert "@alice.approver" in section.find_element(By.CSS_SELECTOR, ".mention").text
    assert section.find_element(By.TAG_NAME, "code").text == "1422da70"
    fields = [f.text for f in section.find_elements(By.CSS_SELECTOR, ".fields > div")]
    assert fields == ["Hosts\n2", "Budget\n0"]
    assert one("hr.block.divider") and "Patch set" in one(".block.context").text
    assert one(".block.image img").get_attribute("alt") == "a chart"
    styles = [
        b.get_attribute("class")
        for b in browser.find_elements(By.CSS_SELECTOR, f"{msg} .actions button")
    ]
    assert styles == ["bk primary", "bk danger"]
    assert "only for alice" not in browser.find_element(By.ID, "messages").text

    # the accessory's confirm dialog: Cancel sends nothing, confirming sends the click
    page.click("Abort", lambda: one('button[data-action-id="abort"]'))
    page.wait("the dialog", lambda: browser.find_element(By.ID, "confirm-overlay").is_displayed())
    dialog = browser.find_element(By.ID, "confirm").text
    assert "Abort rollout #1?" in dialog and "finish first" in dialog
    page.shot("confirm")
    browser.find_element(By.ID, "confirm-deny").click()
    assert not browser.find_element(By.ID, "confirm-overlay").is_displayed()
    assert served.received == []
    page.click("Abort", lambda: one('button[data-action-id="abort"]'))
    page.click("Abort it", lambda: browser.find_element(By.ID, "confirm-yes"))
    page.wait("the signed click", lambda: served.received)
    (payload,) = served.received
    assert payload["actions"][0]["action_id"] == "abort" and payload["user"]["id"] == OPERATOR
