"""The SSH backend: PatchGate's own executor, host by host (issue 19).

It declares ``per_host``: the engine drives each host itself through the
:class:`~workflows.ports.Executor` it was given (the Fabric SSH executor, or the
simulated one with ``PATCHGATE_EXECUTOR=recording``), with preflight, detached
commands, reboots and rollback as before. It takes no options.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from workflows.backends import Capabilities, HostAssessment
from workflows.errors import ExecutorError, HostUnreachable
from workflows.ports import Executor, InventoryHost

SSH_CAPABILITIES = Capabilities(
    per_host=True, rollback=True, reboot=True, health=True, assess=True, inventory=False
)


class SshBackend:
    """The ``ssh`` backend's declaration, and its assessment through the executor."""

    name = "ssh"

    def __init__(self, executor: Executor | None = None) -> None:
        self.executor = executor

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return SSH_CAPABILITIES

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [
            f"unknown option {key!r}: the ssh backend takes none (its settings are PATCHGATE_SSH_*)"
            for key in sorted(options)
        ]

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        """Each host's facts, upgradable packages and its own advisories."""
        if self.executor is None:
            raise RuntimeError("the ssh backend was built without an executor")
        return await asyncio.gather(*(self._assess(host) for host in hosts))

    async def _assess(self, host: InventoryHost) -> HostAssessment:
        executor = self.executor
        assert executor is not None
        try:
            facts = await executor.facts(host)
            upgradable = await executor.list_upgradable(host)
            advisories = await executor.host_advisories(host)
        except HostUnreachable as exc:
            return HostAssessment(host=host.name, reachable=False, error=str(exc))
        except ExecutorError as exc:
            return HostAssessment(host=host.name, reachable=True, error=str(exc))
        return HostAssessment(
            host=host.name,
            reachable=True,
            facts=facts,
            upgradable=list(upgradable),
            advisories=list(advisories),
        )
