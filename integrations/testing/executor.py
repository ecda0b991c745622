"""A recording Executor and HealthChecker: simulated hosts with real per-host state.

Each simulated host keeps its installed versions, boot id and the results of the apply
operations it ran (by op id, like the status files the SSH executor leaves on a host),
so resume and rollback are tested against state, not just a call log. Failures are
injected per host and per step. With a state file, the state survives the process: a
real ``patchgate serve`` run by a test (PATCHGATE_EXECUTOR=recording) and the test
itself see the same hosts (the state's dataclasses are in simstate.py).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from integrations.testing.simjournal import StateStore, world_of
from integrations.testing.simstate import STEPS, Failure, SimHost, SimState, version_key
from workflows.errors import ExecutorError, HostUnreachable
from workflows.ports import (
    ApplyResult,
    HealthResult,
    HostAdvisory,
    HostFacts,
    InventoryHost,
    Preflight,
    RollbackResult,
    Simulation,
    UpgradablePackage,
)

__all__ = ["RecordingExecutor", "RecordingHealthChecker", "SimHost", "SimState"]


class RecordingExecutor:
    """Implements the Executor port on simulated hosts; records every call."""

    def __init__(self, state: SimState | None = None, *, state_file: Path | None = None) -> None:
        self._lock = threading.RLock()
        self.state_file = state_file
        if state is None and self._store is not None and state_file and state_file.exists():
            state = self._store.load()
        self.state = state or SimState()
        self.calls: MutableSequence[tuple[str, str]] = []
        self.per_host_peaks = True  # keep max_concurrent_per_host (see bound_records)
        self._active: Counter[str] = Counter()
        self.max_concurrent_per_host: Counter[str] = Counter()
        self._hang = asyncio.Event()
        # Seconds an apply takes before it changes anything (0: instant). Tests of
        # overlapping work use it; a cancellation during it means the command never ran.
        self.apply_delay = 0.0

    def bound_records(self, keep: int = 1000) -> None:
        """Keep only the last ``keep`` calls and no per-host peaks: what ``serve`` uses,
        whose rollouts may run over 100,000 simulated hosts (the records are the tests')."""
        self.calls = collections.deque(self.calls, maxlen=keep)
        self.per_host_peaks = False
        self.max_concurrent_per_host.clear()

    @property
    def state_file(self) -> Path | None:
        return self._store.path if self._store is not None else None

    @state_file.setter
    def state_file(self, path: Path | None) -> None:
        # The state file's snapshot and journal (simjournal): another process (a second
        # `serve` that took over, a test, a zone worker) may write them meanwhile, and
        # what it wrote is read before this one's next step.
        self._store = StateStore(path) if path is not None else None

    # --- set-up helpers for tests ------------------------------------------------------------

    @classmethod
    def demo(cls, *, state_file: Path | None = None) -> RecordingExecutor:
        """Hosts that exist on first use with an old openssl and demo-app, and a newer
        release in the repository: what ``serve`` uses when PATCHGATE_EXECUTOR=recording."""
        if state_file is not None and state_file.exists():
            return cls(state_file=state_file)
        state = SimState(
            repo={"openssl": ["3.0.11-1", "3.0.13-1"], "demo-app": ["1.0", "1.1"]},
            security=["openssl=3.0.13-1"],
            default_installed={"openssl": "3.0.11-1", "demo-app": "1.0"},
        )
        executor = cls(state, state_file=state_file)
        executor.save()
        return executor

    def add_host(self, name: str, installed: Mapping[str, str], **attrs: Any) -> SimHost:
        host = SimHost(installed=dict(installed), **attrs)
        self.state.hosts[name] = host
        self.record_host(name)
        return self.state.hosts[name]

    def publish(self, package: str, *versions: str, security: bool = False) -> None:
        available = self.state.repo.setdefault(package, [])
        for version in versions:
            if version not in available:
                available.append(version)
            if security:
                self.state.security.append(f"{package}={version}")
        self.record_world()

    def withdraw(self, package: str, version: str) -> None:
        self.state.repo[package] = [v for v in self.state.repo.get(package, []) if v != version]
        self.record_world()

    def fail(self, host: str, step: str, how: Failure = "error") -> None:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}")
        self.state.failures.setdefault(host, {})[step] = how
        self.record_world()

    def heal(self, host: str, step: str | None = None) -> None:
        if step is None:
            self.state.failures.pop(host, None)
        else:
            self.state.failures.get(host, {}).pop(step, None)
        self.record_world()

    def apply_count(self, host: str) -> int:
        return len(self._host(host).applied_ops)

    def installed_on(self, host: str) -> dict[str, str]:
        return dict(self._host(host).installed)

    def save(self) -> None:
        """The whole world as the state file's new snapshot (set-up that changed
        ``state`` directly; every step of the executor writes one journal line)."""
        if self._store is not None:
            with self._lock:
                self._store.save(self.state)

    def record_host(self, name: str, sim: SimHost | None = None) -> None:
        """Journal one host's record as it is now (one line, whatever the fleet's size)."""
        if self._store is not None:
            with self._lock:
                record = {"host": name, "sim": asdict(sim or self.state.hosts[name])}
                self.state = self._store.append(self.state, record)

    def record_world(self) -> None:
        """Journal the world's fields other than its hosts (repository, failures, ...)."""
        if self._store is not None:
            with self._lock:
                self.state = self._store.append(self.state, {"world": world_of(self.state)})

    def _refresh(self) -> None:
        """Read what other processes wrote to the state file since this one last did."""
        if self._store is not None and self._store.changed():
            with self._lock, self._store.locked():
                self.state = self._store.catch_up(self.state)

    # --- internals ------------------------------------------------------------------------

    def _host(self, name: str) -> SimHost:
        host = self.state.hosts.get(name)
        if host is None:
            host = SimHost(installed=dict(self.state.default_installed))
            self.state.hosts[name] = host
        return host

    async def _enter(self, host: InventoryHost, step: str) -> SimHost:
        self.calls.append((host.name, step))
        self._refresh()
        await asyncio.sleep(0)
        how = self.state.failures.get(host.name, {}).get(step)
        if how == "unreachable":
            raise HostUnreachable(host.name, f"connection refused ({step})")
        if how == "hang":
            await self._hang.wait()
        if how == "error" and step not in ("apply", "rollback", "health"):
            raise ExecutorError(host.name, f"{step} failed (injected)")
        return self._host(host.name)

    def _candidate(self, package: str, current: str | None) -> str | None:
        versions = sorted(self.state.repo.get(package, []), key=version_key)
        if not versions:
            return None
        best = versions[-1]
        if current is not None and version_key(best) <= version_key(current):
            return None
        return best

    # --- the Executor port ----------------------------------------------------------------

    async def facts(self, host: InventoryHost) -> HostFacts:
        sim = await self._enter(host, "facts")
        return HostFacts(
            os_id=sim.os_id,
            os_version=sim.os_version,
            arch=sim.arch,
            kernel="6.1.0-sim",
            package_manager=sim.package_manager,  # type: ignore[arg-type]
            boot_id=sim.boot_id,
            uptime_seconds=3600.0,
            reboot_required=sim.reboot_required,
        )

    async def list_upgradable(self, host: InventoryHost) -> Sequence[UpgradablePackage]:
        sim = await self._enter(host, "list_upgradable")
        found = []
        for name, current in sorted(sim.installed.items()):
            candidate = self._candidate(name, current)
            if candidate is not None:
                found.append(
                    UpgradablePackage(
                        name=name,
                        current=current,
                        candidate=candidate,
                        security=f"{name}={candidate}" in self.state.security,
                    )
                )
        return found

    async def simulate(self, host: InventoryHost, packages: Sequence[str]) -> Simulation:
        sim = await self._enter(host, "simulate")
        installs: dict[str, str] = {}
        for spec in packages:
            name, _, wanted = spec.partition("=")  # NAME or NAME=VERSION, as the drivers take
            candidate = self._candidate(name, sim.installed.get(name))
            if wanted and wanted in self.state.repo.get(name, []):
                candidate = wanted
            if candidate is None:
                continue
            installs[name] = candidate
            for dep, version in self.state.depends.get(f"{name}={candidate}", {}).items():
                if sim.installed.get(dep) != version:
                    installs[dep] = version
        return Simulation(installs=installs)

    async def installed(
        self, host: InventoryHost, packages: Sequence[str]
    ) -> Mapping[str, str | None]:
        sim = await self._enter(host, "facts")
        return {name: sim.installed.get(name) for name in packages}

    async def preflight(self, host: InventoryHost, patchset: Mapping[str, str]) -> Preflight:
        sim = await self._enter(host, "preflight")
        del sim
        how = self.state.failures.get(host.name, {}).get("preflight")
        unavailable = [
            f"{n}={v}" for n, v in sorted(patchset.items()) if v not in self.state.repo.get(n, [])
        ]
        problems = ["dpkg database is locked (injected)"] if how == "error" else []
        return Preflight(
            ok=not problems and not unavailable, problems=problems, unavailable=unavailable
        )

    async def apply(
        self, host: InventoryHost, patchset: Mapping[str, str], *, op_id: str
    ) -> ApplyResult:
        sim = await self._enter(host, "apply")
        if op_id in sim.ops:
            raise ExecutorError(host.name, f"operation {op_id} already ran on this host")
        self._active[host.name] += 1
        if self.per_host_peaks:
            self.max_concurrent_per_host[host.name] = max(
                self.max_concurrent_per_host[host.name], self._active[host.name]
            )
        try:
            if self.apply_delay:
                await asyncio.sleep(self.apply_delay)
            # No await from here on: like a detached command, it runs to the end even if
            # PatchGate dies meanwhile.
            before: dict[str, str | None] = {n: sim.installed.get(n) for n in patchset}
            for name, version in patchset.items():
                sim.installed[name] = version
            broken = [
                f"{n}={v}" for n, v in patchset.items() if f"{n}={v}" in self.state.broken_versions
            ]
            failed = self.state.failures.get(host.name, {}).get("apply") == "error" or broken
            exit_code = 100 if failed else 0
            reboot = any(n.startswith(("linux-", "demo-kernel")) for n in patchset)
            sim.reboot_required = sim.reboot_required or reboot
            result = ApplyResult(
                op_id=op_id,
                before=before,
                after={n: sim.installed.get(n) for n in patchset},
                exit_code=exit_code,
                output_tail=(
                    "E: Sub-process /usr/bin/dpkg returned an error code (1)" if failed else "done"
                ),
                reboot_required=reboot,
            )
            sim.ops[op_id] = asdict(result)
            sim.applied_ops.append(op_id)
            self.record_host(host.name, sim)
        finally:
            self._active[host.name] -= 1
            if not self._active[host.name]:
                del self._active[host.name]
        if self.state.failures.get(host.name, {}).get("apply") == "lost_after":
            raise HostUnreachable(host.name, "connection lost during apply")
        return result

    async def apply_status(self, host: InventoryHost, *, op_id: str) -> ApplyResult | None:
        sim = await self._enter(host, "facts")
        data = sim.ops.get(op_id)
        if data is None:
            return None
        return ApplyResult(**data)

    async def rollback(
        self, host: InventoryHost, snapshot: Mapping[str, str | None]
    ) -> RollbackResult:
        sim = await self._enter(host, "rollback")
        if self.state.failures.get(host.name, {}).get("rollback") == "error":
            return RollbackResult(
                ok=False,
                after=dict(sim.installed),
                exit_code=100,
                output_tail="E: rollback failed (injected)",
            )
        for name, version in snapshot.items():
            if version is None:
                sim.installed.pop(name, None)
            else:
                sim.installed[name] = version
        self.record_host(host.name, sim)
        return RollbackResult(
            ok=True, after={n: sim.installed.get(n) for n in snapshot}, exit_code=0
        )

    async def reboot_required(self, host: InventoryHost) -> bool:
        return (await self._enter(host, "facts")).reboot_required

    async def host_advisories(self, host: InventoryHost) -> Sequence[HostAdvisory]:
        sim = await self._enter(host, "host_advisories")
        if sim.package_manager == "apt":
            return []
        found = []
        for data in self.state.advisories:
            if not set(data.get("packages", {})) & set(sim.installed):
                continue
            published = data.get("published")
            found.append(
                HostAdvisory(
                    id=data["id"],
                    packages=dict(data.get("packages", {})),
                    cves=tuple(data.get("cves", ())),
                    severity=data.get("severity"),
                    published=dt.datetime.fromisoformat(published) if published else None,
                )
            )
        return found

    async def reboot(self, host: InventoryHost) -> str:
        sim = await self._enter(host, "reboot")
        sim.boot_id = uuid.uuid4().hex
        sim.reboot_required = False
        self.record_host(host.name, sim)
        return sim.boot_id


class RecordingHealthChecker:
    """Health follows the simulated host: unhealthy while a bad version is installed,
    or when a failure is injected for the host's "health" step."""

    def __init__(self, executor: RecordingExecutor) -> None:
        self.executor = executor
        self.checked: MutableSequence[str] = []

    def bound_records(self, keep: int = 1000) -> None:
        """Keep only the last ``keep`` checked host names (see RecordingExecutor's)."""
        self.checked = collections.deque(self.checked, maxlen=keep)

    async def check(self, host: InventoryHost, checks: Sequence[Any]) -> Sequence[HealthResult]:
        self.checked.append(host.name)
        sim = await self.executor._enter(host, "health")
        how = self.executor.state.failures.get(host.name, {}).get("health")
        bad = [
            f"{n}={v}"
            for n, v in sim.installed.items()
            if f"{n}={v}" in self.executor.state.bad_versions
        ]
        names = [getattr(c, "name", str(c)) for c in checks] or ["installed"]
        if how in ("error", "unhealthy") or bad:
            detail = f"bad version installed: {', '.join(bad)}" if bad else "503 (injected)"
            return [HealthResult(name=names[0], ok=False, detail=detail)]
        return [HealthResult(name=n, ok=True, detail="ok") for n in names]
