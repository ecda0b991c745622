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
    HostAssessment,
    HostOutcome,
    JobRef,
    JobStatus,
)
from workflows.ports import InventoryHost

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
        self.executor.save()
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
        found = []
        for host in hosts:
            facts = await self.executor.facts(host)
            upgradable = await self.executor.list_upgradable(host)
            found.append(
                HostAssessment(host=host.name, reachable=True, facts=facts, upgradable=upgradable)
            )
        return found

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        return [InventoryHost(name=name) for name in sorted(self.executor.state.hosts)]

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
