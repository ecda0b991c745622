"""A recording batch backend for engine tests (issue 19): a tool that patches a whole
batch as one job, on the same simulated hosts as :class:`RecordingExecutor`.

It keeps the hosts' installed versions in the executor's :class:`SimState`, so rollback
and resume are tested against state; the job's effect happens when it is submitted
(like a job the tool runs even if PatchGate dies meanwhile) and is reported when it is
followed. Hosts can fail, be unreachable or be skipped; jobs can be slow (still running
for a number of follows). ``submits`` counts submits per key: a second submit of the
same key is the bug the engine's intent/find discipline prevents.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from integrations.testing.executor import RecordingExecutor
from workflows.backends import (
    BatchWork,
    Capabilities,
    DeviceStatus,
    HostAssessment,
    HostOutcome,
    JobRef,
    JobStatus,
)
from workflows.ports import HostAdvisory, HostFacts, InventoryHost, UpgradablePackage

HostFailure = Literal["failed", "unreachable", "skipped"]


@dataclass
class FakeJob:
    work: BatchWork
    ref: JobRef
    outcomes: dict[str, HostOutcome]
    polls_left: int
    follows: int = 0


@dataclass
class FakeBatchBackend:
    """Implements :class:`~workflows.backends.BatchBackend` on the executor's hosts."""

    executor: RecordingExecutor
    name: str = "batch"
    capabilities_: Capabilities = field(
        default_factory=lambda: Capabilities(rollback=True, reboot=True, health=True, assess=True)
    )
    slow_polls: int = 0  # follows that answer "running" before a job is done
    jobs: dict[str, FakeJob] = field(default_factory=dict)  # job id -> job
    submits: Counter[str] = field(default_factory=Counter)  # key -> submits
    failures: dict[str, HostFailure] = field(default_factory=dict)  # host -> how (apply)
    rollback_failures: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, key or job id)
    applies: Counter[str] = field(default_factory=Counter)  # host -> apply jobs that ran
    # The next submit is accepted by the tool but its answer is lost (a reset connection).
    lose_next_answer: bool = False
    # Assessment: hosts the tool cannot assess (reported unreachable), whether it
    # reports facts, and the hosts of each assess call.
    unassessable: set[str] = field(default_factory=set)
    reports_facts: bool = True
    assess_calls: list[list[str]] = field(default_factory=list)
    # Host status (``status``, with ``Capabilities(status=True)``): per host, the answers
    # of the next asks (a DeviceStatus, or a string: not ok with that state); then ok.
    # ``status_error`` is raised by every ask; ``status_answer`` replaces the answer.
    statuses: dict[str, list[DeviceStatus | str]] = field(default_factory=dict)
    status_calls: list[list[str]] = field(default_factory=list)
    status_error: Exception | None = None
    status_answer: Any = None
    # Halt (``halt``, with ``Capabilities(halt=True)``): (job id, reason) per call; a
    # halted job ends at its next follow with its hosts failed ("halted").
    halts: list[tuple[str, str]] = field(default_factory=list)
    halt_error: Exception | None = None

    # --- set-up helpers ---------------------------------------------------------------

    def fail(self, host: str, how: HostFailure = "failed") -> None:
        self.failures[host] = how

    def submitted(self, action: str) -> list[BatchWork]:
        return [job.work for job in self.jobs.values() if job.work.action == action]

    # --- the port ---------------------------------------------------------------------

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return self.capabilities_

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return [f"unknown option {k!r} (known: playbook)" for k in options if k != "playbook"]

    async def submit(self, work: BatchWork) -> JobRef:
        self.submits[work.key] += 1
        self.calls.append(("submit", work.key))
        await asyncio.sleep(0)
        ref = JobRef(backend=self.name, job_id=f"job-{uuid.uuid4().hex[:8]}", key=work.key)
        outcomes = {host.name: self._run(work, host.name) for host in work.hosts}
        for host in work.hosts:
            if host.name in self.executor.state.hosts:
                self.executor.record_host(host.name)
        self.jobs[ref.job_id] = FakeJob(work, ref, outcomes, polls_left=self.slow_polls)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise ConnectionResetError("connection reset after the job was accepted")
        return ref

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        self.calls.append(("find", key))
        await asyncio.sleep(0)
        return next((job.ref for job in self.jobs.values() if job.ref.key == key), None)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        self.calls.append(("follow", job.job_id))
        await asyncio.sleep(0)
        fake = self.jobs[job.job_id]
        fake.follows += 1
        if fake.polls_left > 0:
            fake.polls_left -= 1
            return JobStatus(job=job, done=False, state="running")
        failed = any(o.status != "applied" for o in fake.outcomes.values())
        return JobStatus(
            job=job,
            done=True,
            state="failed" if failed else "successful",
            hosts=dict(fake.outcomes),
        )

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        """What the tool knows of each host, from the shared state (not through the
        executor's SSH steps: a host SSH cannot reach is still assessed here), with the
        repository's security marks as the tool's advisories."""
        self.assess_calls.append(sorted(h.name for h in hosts))
        await asyncio.sleep(0)
        state = self.executor.state
        found = []
        for host in hosts:
            if host.name in self.unassessable:
                found.append(
                    HostAssessment(host=host.name, reachable=False, error="agent disconnected")
                )
                continue
            sim = self.executor._host(host.name)
            upgradable, advisories = [], []
            for name, current in sorted(sim.installed.items()):
                candidate = self.executor._candidate(name, current)
                if candidate is None:
                    continue
                security = f"{name}={candidate}" in state.security
                upgradable.append(UpgradablePackage(name, current, candidate, security))
                if security:
                    advisories.append(
                        HostAdvisory(
                            id=f"TOOL-{name}-{candidate}",
                            packages={name: candidate},
                            cves=(f"CVE-2026-{len(name):04d}",),
                            severity="high",
                        )
                    )
            facts = HostFacts(
                os_id=sim.os_id,
                os_version=sim.os_version,
                arch=sim.arch,
                kernel="6.1.0-sim",
                package_manager=sim.package_manager,  # type: ignore[arg-type]
                boot_id=sim.boot_id,
                uptime_seconds=3600.0,
                reboot_required=sim.reboot_required,
            )
            found.append(
                HostAssessment(
                    host=host.name,
                    reachable=True,
                    facts=facts if self.reports_facts else None,
                    upgradable=upgradable,
                    advisories=advisories,
                )
            )
        return found

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        return [InventoryHost(name=name) for name in sorted(self.executor.state.hosts)]

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        self.status_calls.append([h.name for h in hosts])
        await asyncio.sleep(0)
        if self.status_error is not None:
            raise self.status_error
        if self.status_answer is not None:
            return self.status_answer  # type: ignore[no-any-return]
        found = []
        for host in hosts:
            queue = self.statuses.get(host.name) or []
            answer = queue.pop(0) if queue else DeviceStatus(host.name, True, "connected")
            if isinstance(answer, str):
                answer = DeviceStatus(host.name, False, answer, f"{host.name} is {answer}")
            found.append(answer)
        return found

    async def halt(self, job: JobRef, options: Mapping[str, Any], *, reason: str) -> None:
        self.halts.append((job.job_id, reason))
        await asyncio.sleep(0)
        if self.halt_error is not None:
            raise self.halt_error
        fake = self.jobs.get(job.job_id)  # a job it never ran: nothing to stop
        if fake is not None and fake.polls_left > 0:
            fake.polls_left = 0
            for name, outcome in fake.outcomes.items():
                fake.outcomes[name] = HostOutcome(
                    host=name,
                    status="failed",
                    before=outcome.before,
                    after=dict(outcome.before),
                    output=f"halted: {reason}",
                    failed_task="halted",
                )

    # --- the simulated tool -----------------------------------------------------------

    def _run(self, work: BatchWork, name: str) -> HostOutcome:
        sim = self.executor._host(name)
        wanted = dict(work.versions.get(name, {}))
        before: dict[str, str | None] = {n: sim.installed.get(n) for n in wanted}
        how = self.failures.get(name) if work.action == "apply" else None
        if how == "unreachable":
            return HostOutcome(host=name, status="unreachable", output="ssh: connect refused")
        if work.action == "reboot":
            sim.boot_id = uuid.uuid4().hex
            sim.reboot_required = False
            return HostOutcome(host=name, status="applied")
        if how == "skipped":
            return HostOutcome(host=name, status="skipped", before=before, after=dict(before))
        if how == "failed" or (work.action == "rollback" and name in self.rollback_failures):
            return HostOutcome(
                host=name,
                status="failed",
                before=before,
                after=dict(before),
                output="E: Sub-process /usr/bin/dpkg returned an error code (1)",
                failed_task="Install the pinned packages",
                exit_code=2,
            )
        for package, version in wanted.items():
            if version is None:
                sim.installed.pop(package, None)
            else:
                sim.installed[package] = version
        reboot = work.action == "apply" and any(n.startswith("demo-kernel") for n in wanted)
        sim.reboot_required = sim.reboot_required or reboot
        if work.action == "apply":
            self.applies[name] += 1
        return HostOutcome(
            host=name,
            status="applied",
            before=before,
            after={n: sim.installed.get(n) for n in wanted},
            output="ok",
            exit_code=0,
            reboot_required=reboot,
        )
