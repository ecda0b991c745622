"""Shared by the lab test modules (apt, dnf and zypper hosts): booting a module's hosts,
their inventory entries and known_hosts, the lab plan, the engine rig on the real SSH
executor and health checker, and reading back what a rollout did."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from integrations.health import HealthChecker
from integrations.ssh import SshExecutor, SshOptions
from tests.enginekit import Rig, make_plan
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from workflows.db import Database, read_only
from workflows.hostkeys import DbKnownHostStore
from workflows.models import HostRun
from workflows.plans import PatchPlan
from workflows.ports import HostAdvisory, HostFacts, InventoryHost, UpgradablePackage

H = TypeVar("H", bound=LabHost)

HEALTH = {
    "name": "http",
    "type": "http",
    "url": "http://{address}:8080/cgi-bin/health",
    "retries": 2,
    "interval": "1s",
    "timeout": "3s",
}
# What every rpm host's repository offers unless a test says otherwise
RPM_APP = ("lab-base=1.0", "demo-app=1.0", "demo-app=1.1", "demo-kernel=1.0")


@contextmanager
def started(make: Callable[[str, int], H], names: Sequence[tuple[str, int]]) -> Iterator[list[H]]:
    """Boot the hosts ``make(name, index)`` builds, in order; stop every one booted."""
    hosts: list[H] = []
    try:
        for name, index in names:
            host = make(name, index)
            host.prepare()
            hosts.append(host)
            host.start()
        yield hosts
    finally:
        for host in hosts:
            host.stop()


def inventory_host(lab: Lab, host: LabHost, group: str = "lab", **kw: Any) -> InventoryHost:
    return InventoryHost(
        name=host.name,
        address=host.address,
        port=host.port,
        user="patchgate",
        private_key_file=str(lab.client_key),
        groups=frozenset({group}),
        **kw,
    )


def known_hosts(tmp_path: Path, hosts: Sequence[LabHost]) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    return path


def executor(kh: Path) -> SshExecutor:
    return SshExecutor(
        SshOptions(known_hosts=kh, concurrency=4, command_timeout=120, connect_timeout=5)
    )


def lab_plan(*, batch: int = 2, budget: int = 0, **overrides: Any) -> PatchPlan:
    return make_plan(
        rings=[{"name": "lab", "hosts": "group:lab", "batch": batch, "failure_budget": budget}],
        packages={"include": ["demo-app"]},
        health_checks=[HEALTH],
        reboot="never",
        **overrides,
    )


class LabRig(Rig):
    def __init__(self, db: Database, lab: Lab, inventory: list[InventoryHost], kh: Path) -> None:
        super().__init__(db, hosts=inventory)
        self.executor = SshExecutor(  # type: ignore[assignment]
            SshOptions(
                known_hosts=kh,
                concurrency=10,
                command_timeout=120,
                connect_timeout=5,
                reboot_timeout=30,
            ),
            host_keys=DbKnownHostStore(db),
        )
        self.health = HealthChecker(run_argv=self.executor.run_argv, deadline=60)  # type: ignore[assignment]


def reset(lab: Lab, *hosts: LabHost, publish: tuple[str, ...]) -> None:
    """Publish only ``publish`` and give each host a fresh disk."""
    lab.publish_only(*publish)
    for host in hosts:
        host.reset()


async def run_rollout(rig: Rig, plan: PatchPlan, hook: Any = None) -> tuple[int, dict[str, str]]:
    rollout_id = await rig.start(plan)
    await asyncio.wait_for(rig.engine(hook).run_until_idle(), 300)
    return rollout_id, await rig.host_states(rollout_id)


def health(host: LabHost) -> str:
    try:
        with urllib.request.urlopen(host.health_url, timeout=5) as response:
            return f"{response.status} {response.read().decode().strip()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code}"
    except OSError as exc:
        return f"down: {exc}"


async def host_runs(rig: Rig, rollout_id: int) -> dict[str, dict[str, Any]]:
    async with read_only(rig.db) as session:
        rows = (
            await session.scalars(sa.select(HostRun).where(HostRun.rollout_id == rollout_id))
        ).all()
    return {
        r.host_name: {
            "exit_code": r.exit_code,
            "output_tail": r.output_tail or "",
            "error": r.error,
        }
        for r in rows
    }


async def assessed(
    lab: Lab, host: LabHost, kh: Path
) -> tuple[HostFacts, Sequence[UpgradablePackage], Sequence[HostAdvisory]]:
    """The host's facts, upgradable list and advisories, read through the SSH executor."""
    ex = executor(kh)
    inv = inventory_host(lab, host)
    try:
        return await ex.facts(inv), await ex.list_upgradable(inv), await ex.host_advisories(inv)
    finally:
        ex.close()
