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
import pytest_asyncio
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
from workflows.backends import BatchWork
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
    ) -> None:
        super().__init__(db, hosts=hosts)
        self.client = GraphClient(
            graph.tenant,
            graph.client_id,
            SecretStr(graph.client_secret),
            graph_url=graph.url,
            login_url=graph.url,
        )
        self.intune = IntuneBackend(self.client, journal, poll_interval=0.01)

    def engine(self, hook: Any = None, *, job_wait: float = 5.0) -> Engine:
        return Engine(
            EngineDeps(
                db=self.db,
                executor=self.executor,
                health=self.health,
                inventory=self.inventory,
                clock=self.clock,
                backends=build_backends(executor=self.executor, intune=self.intune),
                job_poll=0.0,
                job_wait=job_wait,
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


# --- the contract tests' Graph (tests/integration/test_intune_*.py) ----------------------

KB, BUILD = "KB5046633", "10.0.22631.4541"
KB10, BUILD10 = "KB5046613", "10.0.19045.5131"


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[IntuneGraphEmulator]:
    emulator = IntuneGraphEmulator(steps=2)
    await emulator.start()
    for name in ("win1", "win2", "win3"):
        emulator.add_device(name, "10.0.22631.4460")
    emulator.add_device("win10", "10.0.19045.5073")
    emulator.add_device("kiosk", "10.0.22631.4460", aad_id="")
    emulator.add_device("mac1", "14.6", operating_system="macOS")
    emulator.add_entry("2026.10 B", {"10.0.22631.4391": "KB5044285"}, cves=["CVE-2026-1"])
    emulator.add_entry(
        "2026.11 B",
        {BUILD: KB, BUILD10: KB10},
        severity="important",
        cves=["CVE-2026-43451", "CVE-2026-49039"],
    )
    try:
        yield emulator
    finally:
        await emulator.stop()


class GraphRig:
    def __init__(self, graph: IntuneGraphEmulator, journal: Path) -> None:
        self.graph = graph
        self.journal = journal
        self.clients: list[GraphClient] = []

    def client(self, *, secret: str | None = None, **kw: Any) -> GraphClient:
        kw.setdefault("max_attempts", 3)
        kw.setdefault("sleep", no_sleep)
        client = GraphClient(
            self.graph.tenant,
            self.graph.client_id,
            SecretStr(secret or self.graph.client_secret),
            graph_url=self.graph.url,
            login_url=self.graph.url,
            **kw,
        )
        self.clients.append(client)
        return client

    def backend(self, **kw: Any) -> IntuneBackend:
        return IntuneBackend(self.client(**kw), self.journal, poll_interval=0.01, sleep=no_sleep)


async def no_sleep(_: float) -> None:
    return None


@pytest_asyncio.fixture
async def rig(graph: IntuneGraphEmulator, tmp_path: Path) -> AsyncIterator[GraphRig]:
    r = GraphRig(graph, tmp_path / "journal")
    try:
        yield r
    finally:
        for client in r.clients:
            await client.close()


def work(key: str, hosts: list[str], options: dict[str, Any] | None = None) -> BatchWork:
    return BatchWork(
        key=key,
        action="apply",
        rollout_id=7,
        ring="prod",
        batch=0,
        hosts=[InventoryHost(name=h) for h in hosts],
        versions={h: ({KB10: BUILD10} if h == "win10" else {KB: BUILD}) for h in hosts},
        options=options or {},
    )


def deploy_posts(graph: IntuneGraphEmulator) -> list[dict[str, Any]]:
    return [b for p, b in graph.posts if p.endswith("/updates/deployments")]
