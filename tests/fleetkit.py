"""The fleet tools end to end (issues 20, 21): the real Bolt app on a real port over a
rig, and an outbox worker that delivers to the Slack and Jira emulators through the real
``slack_sdk`` and ``jira`` clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.slack.app import build_bolt_app
from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer
from tests.enginekit import Rig
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN, Bot, StubLeadership, make_deps
from workflows.db import Database
from workflows.notify import TOPIC
from workflows.outbox import OutboxWorker


@contextlib.asynccontextmanager
async def served(
    db: Database,
    rig: Rig,
    settings: Any,
    jira_api: JiraEmulator,
    slack_api: SlackEmulator,
) -> AsyncIterator[Bot]:
    """The real Bolt app on a real port, and an outbox worker for Slack and Jira."""
    deps = make_deps(settings, db, rig, slack_api)
    bolt = build_bolt_app(deps, signing_secret=SECRET, token=TOKEN)
    app = build_web_app(
        ServerDeps(db=db, leadership=StubLeadership(), metrics=Metrics(), slack=bolt)
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ticketer = JiraTicketer(
        JiraConfig(
            url=jira_api.url, token=jira_api.token, project="OPS", timeout=5, search_settle=0.0
        )
    )
    sinks = {
        TOPIC: SlackDeliverer(deps.client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL"),
        "ticket": ticketer,
    }
    worker = OutboxWorker(
        db, sinks, clock=rig.clock.now, owner="e2e", base_backoff=0.01, max_backoff=0.01
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield Bot(f"http://127.0.0.1:{port}/slack/events", rig, deps, session, worker)
    finally:
        ticketer.close()
        await runner.cleanup()
