"""AnsibleBackend: the backend port (workflows/backends.py) on ansible-runner.

One ``ansible-playbook`` run per batch (runs.py), results per host from runner's job
events (events.py). A run started here is followed through its thread; a run found after
a crash is followed through its artifacts: its final status when it finished, "running"
while the process that started it (or an orphaned ansible process of the run) lives,
otherwise "interrupted" with every host lacking its own result reported failed
(docs/ansible.md, "After a crash").
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_runner.exceptions import AnsibleRunnerException

from integrations.backends.ansible import events as ev
from integrations.backends.ansible.inventory import inventory_hosts, list_inventory
from integrations.backends.ansible.options import capabilities, check_options
from integrations.backends.ansible.runs import (
    AnsibleConfig,
    Run,
    Workspace,
    job_id_for,
    orphans,
    owner_alive,
)
from workflows.backends import (
    BatchWork,
    Capabilities,
    HostAssessment,
    JobRef,
    JobStatus,
)
from workflows.errors import ExecutorError, NotFound, PlanError
from workflows.ports import InventoryHost

PLAYBOOK_FOR = {"apply": "playbook", "rollback": "rollback_playbook", "reboot": "reboot_playbook"}
POLL = 0.2


class AnsibleBackend:
    """The ``ansible`` backend. Build one in the composition root and close() it on exit."""

    name = "ansible"

    def __init__(self, config: AnsibleConfig) -> None:
        self.config = config
        self.workspace = Workspace(config)
        self._runs: dict[str, Run] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ansible-backend")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    # --- pure --------------------------------------------------------------------------------

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs --------------------------------------------------------------------------------

    def _playbook(self, options: Mapping[str, Any], action: str) -> str:
        problems = check_options(options)
        if problems:
            raise PlanError(list(problems))
        playbook = options.get(PLAYBOOK_FOR.get(action, f"{action}_playbook"))
        if not playbook:
            raise PlanError([f"ansible: no playbook configured for {action!r}"])
        return str(playbook)

    async def _start(self, *, job_id: str, **kwargs: Any) -> Run:
        loop = asyncio.get_running_loop()
        try:
            run = await loop.run_in_executor(
                self._pool, functools.partial(self.workspace.start, job_id=job_id, **kwargs)
            )
        except (AnsibleRunnerException, OSError) as exc:
            names = ",".join(h.name for h in kwargs.get("hosts") or ())
            raise ExecutorError(names, f"ansible could not start run {job_id}: {exc}") from exc
        self._runs[job_id] = run
        return run

    async def submit(self, work: BatchWork) -> JobRef:
        playbook = self._playbook(work.options, work.action)
        job_id = job_id_for(work.key)
        known = self.workspace.meta(job_id)
        if known is not None and known.get("key") == work.key:
            return JobRef(backend=self.name, job_id=job_id, key=work.key)  # already submitted
        names = [h.name for h in work.hosts]
        extravars = {
            "patchgate_action": work.action,
            "patchgate_key": work.key,
            "patchgate_rollout_id": work.rollout_id,
            "patchgate_ring": work.ring,
            "patchgate_batch": work.batch,
            "patchgate_patchset_hash": work.patchset_hash,
            "patchgate_packages": {h: dict(v) for h, v in work.versions.items()},
        }
        meta = {
            "key": work.key,
            "action": work.action,
            "rollout_id": work.rollout_id,
            "ring": work.ring,
            "batch": work.batch,
            "hosts": names,
            "playbook": playbook,
            "started": time.time(),
        }
        await self._start(
            job_id=job_id,
            meta=meta,
            project_dir=str(work.options["project_dir"]),
            playbook=playbook,
            inventory=work.options.get("inventory"),
            hosts=work.hosts,
            extravars=extravars,
            limit=names,
        )
        return JobRef(backend=self.name, job_id=job_id, key=work.key)

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        job_id = job_id_for(key)
        meta = self.workspace.meta(job_id)
        if meta is None or meta.get("key") != key:
            return None
        return JobRef(backend=self.name, job_id=job_id, key=key)

    def status(self, job: JobRef) -> JobStatus:
        """The job as its thread (started here) or its artifacts (found after a crash) say."""
        meta = self.workspace.meta(job.job_id)
        if meta is None:
            where = self.config.artifacts_dir
            raise NotFound(f"ansible job {job.job_id} has no artifacts under {where}")
        hosts = [str(h) for h in meta.get("hosts") or ()]
        run = self._runs.get(job.job_id)
        if run is not None and run.thread.is_alive():
            return JobStatus(job=job, done=False, state="running")
        final = self.workspace.final_state(job.job_id)
        events = self.workspace.events(job.job_id)
        tail = self.workspace.stdout_tail(job.job_id)
        if final is not None:
            self._runs.pop(job.job_id, None)
            outcomes = ev.outcomes(events, hosts, finished=True, run_output=tail)
            return JobStatus(job=job, done=True, state=final, hosts=outcomes)
        if run is not None:  # its thread ended without a status: runner itself failed
            outcomes = ev.outcomes(events, hosts, finished=True, run_output=tail)
            return JobStatus(job=job, done=True, state="error", hosts=outcomes, detail=tail)
        owner = meta.get("owner") or {}
        if owner_alive(owner):
            detail = f"running in process {owner.get('pid')}"
            return JobStatus(job=job, done=False, state="running", detail=detail)
        left = orphans(job.job_id)
        if left:
            detail = f"its runner is gone; {len(left)} process(es) of the run still alive"
            return JobStatus(job=job, done=False, state="running", detail=detail)
        outcomes = ev.outcomes(events, hosts, finished=False)
        detail = "the process that ran it ended before the run finished"
        return JobStatus(job=job, done=True, state="interrupted", hosts=outcomes, detail=detail)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            current = self.status(job)
            left = deadline - time.monotonic()
            if current.done or left <= 0:
                return current
            await asyncio.sleep(min(POLL, left))

    # --- assessment and inventory ------------------------------------------------------------

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        playbook = self._playbook(options, "assess")
        key = f"assess-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        names = [h.name for h in hosts]
        extravars = {"patchgate_action": "assess", "patchgate_key": key}
        meta = {"key": key, "action": "assess", "hosts": names, "playbook": playbook}
        job_id = job_id_for(key)
        run = await self._start(
            job_id=job_id,
            meta=meta,
            project_dir=str(options["project_dir"]),
            playbook=playbook,
            inventory=options.get("inventory"),
            hosts=hosts,
            extravars=extravars,
            limit=names,
        )
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, run.thread.join, self.config.timeout + 60)
        finally:
            self._runs.pop(job_id, None)
        final = self.workspace.final_state(job_id)
        events = self.workspace.events(job_id)
        return ev.assessments(events, names, finished=final is not None)

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        path = options.get("inventory")
        if not isinstance(path, str) or not path:
            raise PlanError(["ansible: hosts() needs the inventory option"])
        loop = asyncio.get_running_loop()
        scratch = self.config.artifacts_dir / ".scratch"
        data = await loop.run_in_executor(self._pool, list_inventory, path, scratch)
        return inventory_hosts(data)

    # --- retention ---------------------------------------------------------------------------

    def prune(self, *, older_than: float, now: float | None = None) -> list[str]:
        """Delete the job directories older than ``older_than`` seconds (retention);
        never one whose run is still going here or in an orphaned process."""
        live = {job_id for job_id, run in self._runs.items() if run.thread.is_alive()}
        removed = []
        for job_id in self.workspace.prune(older_than=older_than, now=now, keep=live):
            self._runs.pop(job_id, None)
            removed.append(job_id)
        return removed
