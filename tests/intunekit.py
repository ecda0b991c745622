"""The real engine over Windows devices that Intune patches (issue 21): a Rig whose
simulated hosts stand for the devices (PatchGate's own health checks reach them) and
whose engines have the ``intune`` backend on the real Graph client, against the Graph
emulator (tests/fakes/intune_graph_api.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from integrations.backends import build_backends
from integrations.backends.intune import GraphClient, IntuneBackend
from tests.enginekit import Rig
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from workflows.db import Database
from workflows.engine import Engine, EngineDeps
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
