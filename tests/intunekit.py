"""The real engine over Windows devices that Intune patches (issue 21): a Rig whose
simulated hosts stand for the devices (PatchGate's own health checks reach them) and
whose engines have the ``intune`` backend on the real Graph client, against the Graph
emulator (tests/fakes/intune_graph_api.py); and, for the end-to-end test, the real Bolt
app on a real port with an outbox worker delivering to the Slack and Jira emulators."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.metrics import Metrics
from bot.server import ServerDeps, build_web_app
from bot.slack.app import build_bolt_app
from integrations.backends import build_backends
from integrations.backends.intune import GraphClient, IntuneBackend
from integrations.jira import JiraConfig, JiraTicketer
from integrations.slack import SlackDeliverer
from tests.enginekit import Rig
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN, Bot, StubLeadership, make_deps
from workflows.db import Database
from workflows.engine import Engine, EngineDeps
from workflows.notify import TOPIC
from workflows.outbox import OutboxWorker
from workflows.ports import InventoryHost

# The month's quality update: build -> KB, for Windows 11 23H2 and Windows 10 22H2.
UPDATE = {"10.0.22631.4541": "KB5046633", "10.0.19045.5131": "KB5046613"}


class IntuneRig(Rig):
    def __init__(
        self,
        db: Database,
        graph: IntuneGraphEmulator,
        journal: Path,
        hosts: Sequence[InventoryHost],
        update: Mapping[str, str] = UPDATE,
    ) -> None:
        super().__init__(db, hosts=hosts)
        # The engine preflights one host per platform through its executor before a
        # ring starts (workflows/engine/_rings.py), even a tool's: the simulated repo
        # lists the KBs so that check passes as it would on a real estate.
        for build, kb in update.items():
            self.executor.state.repo[kb] = [build]
        self.client = GraphClient(
            graph.tenant,
            graph.client_id,
            SecretStr(graph.client_secret),
            graph_url=graph.url,
            login_url=graph.url,
        )
        self.intune = IntuneBackend(self.client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None) -> Engine:
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                backends=build_backends(executor=self.executor, intune=self.intune),
                job_poll=0.0,
                job_wait=5.0,
            ),
            hook=hook,
        )


def in_groups(devices: Mapping[str, str], group: str) -> list[InventoryHost]:
    return [InventoryHost(name=n, groups=frozenset({group})) for n in devices]


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
