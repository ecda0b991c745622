"""The Slack test kit: the Web API emulator on an ephemeral port, requests signed as Slack
signs them, and the real Bolt app behind the real aiohttp server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.settings import Settings
from bot.slack.app import build_bolt_app
from bot.slack.deps import SlackDeps, candidate_groups
from integrations.slack import SlackDeliverer, SlackDirectory, make_client
from integrations.slack.uploads import TOPIC as UPLOAD_TOPIC
from integrations.slack.uploads import UploadDeliverer
from tests.enginekit import OPERATORS, Rig
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from workflows.db import Database
from workflows.notify import TOPIC
from workflows.outbox import OutboxWorker

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"


def signed_request(
    body: str, *, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers Slack sends with ``body``: v0 HMAC-SHA256 over ``v0:{ts}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class StubLeadership:
    is_leader = True
    epoch = 1
    refusal = None


@pytest_asyncio.fixture
async def slack_api() -> AsyncIterator[SlackEmulator]:
    async with slack_emulator(token=TOKEN) as emulator:
        yield emulator


@dataclass
class Bot:
    """The real app on a real port, and ways to reach it as Slack does."""

    url: str
    rig: Rig
    deps: SlackDeps
    session: aiohttp.ClientSession
    worker: OutboxWorker

    async def send(
        self, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        hdrs = {"Content-Type": content_type, **(headers or signed_request(body))}
        async with self.session.post(self.url, data=body.encode(), headers=hdrs) as resp:
            return resp.status, await resp.text()

    async def command(
        self, text: str, *, user: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        body = urllib.parse.urlencode(
            {
                "token": "legacy",
                "team_id": "T0TEAM",
                "channel_id": "C0PATCHES",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/patch",
                "text": text,
                "response_url": "https://hooks.slack.invalid/commands/1",
                "trigger_id": "1.2.3",
            }
        )
        return await self.send(body, "application/x-www-form-urlencoded", headers)

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self.send(body, "application/x-www-form-urlencoded")

    async def click(
        self, action_id: str, value: str, *, user: str, ts: str = "1.1"
    ) -> tuple[int, str]:
        return await self.interact(
            {
                "type": "block_actions",
                "team": {"id": "T0TEAM"},
                "user": {"id": user},
                "channel": {"id": "C0PATCHES"},
                "container": {"type": "message", "channel_id": "C0PATCHES", "message_ts": ts},
                "message": {"ts": ts},
                "trigger_id": f"trigger-{user}",
                "action_ts": str(time.time_ns()),
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": "gate_actions",
                        "value": value,
                        "type": "button",
                    }
                ],
            }
        )

    async def event(self, event: dict[str, Any]) -> tuple[int, str]:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0TEAM",
                "api_app_id": "A0APP",
                "event": event,
                "event_id": f"Ev{time.monotonic_ns()}",
                "event_time": int(time.time()),
            }
        )
        return await self.send(body, "application/json")

    async def deliver(self) -> int:
        total = 0
        while (n := await self.worker.run_once()) > 0:
            total += n
        return total


def make_settings(**extra: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        operators=",".join(sorted(OPERATORS)),
        oncall_channel="C0ONCALL",
        oncall_group="S0ONCALL",
        **extra,
    )


def make_deps(settings: Settings, db: Database, rig: Rig, slack_api: SlackEmulator) -> SlackDeps:
    """What the Slack handlers of one runtime use: its own Web API client (to the
    emulator) and Directory, on ``db`` with the rig's clock and inventory."""
    client = make_client(token=TOKEN, base_url=slack_api.url, timeout=1)

    async def candidates() -> frozenset[str]:
        return await candidate_groups(settings, db)

    return SlackDeps(
        settings=settings,
        db=db,
        directory=SlackDirectory(client, candidates),
        clock=rig.clock,
        inventory=rig.inventory,
        client=client,
    )


@pytest_asyncio.fixture
async def bot(db: Database, slack_api: SlackEmulator, tmp_path: Any) -> AsyncIterator[Bot]:
    from ruamel.yaml import YAML

    from tests.enginekit import plan_dict

    plans = tmp_path / "plans"
    plans.mkdir()
    YAML().dump(plan_dict(), plans / "weekly.yml")
    settings = make_settings(plans_dir=plans)
    rig = Rig(db)
    deps = make_deps(settings, db, rig, slack_api)
    client = deps.client
    bolt = build_bolt_app(deps, signing_secret=SECRET, token=TOKEN)
    app = build_web_app(
        ServerDeps(db=db, leadership=StubLeadership(), metrics=Metrics(), slack=bolt)
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    deliverer = SlackDeliverer(client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL")
    worker = OutboxWorker(
        db,
        {TOPIC: deliverer, UPLOAD_TOPIC: UploadDeliverer(client)},
        clock=rig.clock.now,
        owner="test",
        base_backoff=0.01,
        max_backoff=0.01,
    )
    async with aiohttp.ClientSession() as session:
        yield Bot(f"http://127.0.0.1:{port}/slack/events", rig, deps, session, worker)
    await runner.cleanup()
