"""The Intune backend: a batch is one deployment of the Windows Update for Business
deployment service per quality update (catalog entry) its devices are pinned to.

``submit`` enrolls the batch's devices in quality update management
(``updatableAssets/enrollAssets``), creates a deployment whose content is the catalog
entry (``POST deployments``; expedited when the plan asks and the entry allows it, with
the plan's monitoring rule) and adds the devices to its audience
(``deploymentAudiences/{id}/updateAudience``). The job key is kept in a local
:class:`~.journal.Journal` (a deployment has no free-text field); the job id PatchGate
shows is the deployment ids.

``follow`` reads each deployment's ``state`` and each device: Intune's ``osVersion`` (the
device has the update once it runs the revision's build or a later one), the update
ring's ``deviceUpdateStates`` when the plan names the ring (``failed`` counts as the
device's failure), and the updatable asset's ``errors`` (a device the service cannot
update). Graph has no per-device install state of a deployment (the deployment
service's per-device reports are in Windows Update for Business reports, a Log
Analytics workspace); docs/intune.md says so. ``halt`` pauses the deployments
(``state.requestedValue = paused``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from integrations.backends.intune import bodies
from integrations.backends.intune import graph as g
from integrations.backends.intune.client import GraphClient
from integrations.backends.intune.errors import IntuneError, IntuneRejected, IntuneUnavailable
from integrations.backends.intune.journal import Entry, Journal, Rollout, Target
from integrations.backends.intune.options import (
    IntuneOptions,
    capabilities,
    check_options,
    parse_options,
)
from integrations.backends.intune.outcomes import judge
from workflows.backends import (
    BatchWork,
    Capabilities,
    DeviceStatus,
    HostAssessment,
    HostOutcome,
    JobRef,
    JobStatus,
)
from workflows.ports import InventoryHost

log = logging.getLogger(__name__)

NAME = g.NAME
WU = "beta/admin/windows/updates"
DEVICES = "v1.0/deviceManagement/managedDevices"
QUALITY = bodies.QUALITY
RING = "beta/deviceManagement/deviceConfigurations/{}/microsoft.graph."
RING += "windowsUpdateForBusinessConfiguration/deviceUpdateStates"


class IntuneBackend:
    """Implements :class:`workflows.backends.BatchBackend`, ``StatusBackend`` and
    ``HaltBackend`` over a :class:`GraphClient`."""

    name = NAME

    def __init__(
        self,
        client: GraphClient,
        journal_dir: Path,
        *,
        poll_interval: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._journal = Journal(journal_dir)
        self._poll = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._final: dict[str, dict[str, HostOutcome]] = {}  # key -> host -> final outcome

    async def close(self) -> None:
        await self._client.close()

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        opts = _options(work.options)
        if work.action != "apply":
            raise IntuneRejected(
                f"intune: cannot {work.action} (the deployment service offers updates only)"
            )
        entry = self._journal.load(work.key)
        if entry is None:
            entry = await self._plan(work, opts)
            self._journal.save(entry)  # the intent, before anything is created
        await self._complete(entry, opts)
        log.info("Intune deployments %s for %s", entry.ids, work.key)
        return JobRef(backend=NAME, job_id=entry.ids, key=work.key)

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        entry = self._journal.load(key)
        return None if entry is None else JobRef(NAME, entry.ids, key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        opts = _options(options)
        entry = self._load(job.key)
        ref = JobRef(NAME, entry.ids, job.key)
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                await self._complete(entry, opts, resumed=True)  # steps a crash left undone
            except IntuneUnavailable as exc:
                log.info("Intune: %s not completed this time (%s)", job.key, exc)
            states, outcomes = await self._outcomes(entry, opts)
            word = ",".join(sorted(set(states.values()))) or "pending"
            if all(o is not None for o in outcomes.values()):
                hosts = {h: o for h, o in outcomes.items() if o is not None}
                bad = any(o.status != "applied" for o in hosts.values())
                state = "failed" if bad else "successful"
                if all(o.status == "skipped" for o in hosts.values()):
                    state = "paused"  # halted: nothing more was offered
                return JobStatus(ref, True, state, hosts, detail=f"deployments: {word}")
            left = deadline - time.monotonic()
            if left <= 0:
                return JobStatus(ref, False, word)
            await self._sleep(min(self._poll, left))

    async def halt(self, job: JobRef, options: Mapping[str, Any], *, reason: str) -> None:
        entry = self._journal.load(job.key)
        if entry is None:
            return
        entry.halted = True
        self._journal.save(entry)
        for dep in entry.deployments:
            if dep.deployment_id is None:
                continue
            path = f"{WU}/deployments/{dep.deployment_id}"
            state = g.state(await self._client.get(path))
            if state[0] in ("paused", "archived") or state[1] in ("paused", "archived"):
                continue
            await self._client.patch(path, bodies.paused())
            # a deployment keeps no note: the reason is PatchGate's (audit, this log)
            log.info("Intune deployment %s paused (%s): %s", dep.deployment_id, job.key, reason)

    # --- reads ------------------------------------------------------------------------------

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        opts = _options(options)
        found = await self._devices([h.name for h in hosts], strict=False)
        entries = [
            e
            for e in await self._entries()
            if opts.classification == "all" or e.classification == "security"
        ]
        out = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                out.append(HostAssessment(host.name, False, error="not an Intune Windows device"))
            elif dev.aad_id is None:
                out.append(HostAssessment(host.name, False, error="no Microsoft Entra device id"))
            else:
                out.append(g.assessment(dev, entries))
        return out

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        out = []
        async for item in self._client.pages(DEVICES, {"$filter": "operatingSystem eq 'Windows'"}):
            try:
                out.append(g.inventory_host(g.device(item)))
            except IntuneError as exc:  # one device of another shape: a gap, not the import
                name = item.get("deviceName")
                if isinstance(name, str) and name:
                    out.append(g.unusable_host(name, str(exc)))
                else:
                    log.warning("Intune: a managed device skipped: %s", exc)
        return out

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        opts = _options(options)
        found = await self._devices([h.name for h in hosts], strict=False)
        ring = await self._ring(opts)
        out = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                out.append(
                    DeviceStatus(host.name, False, "unknown", "not an Intune Windows device")
                )
                continue
            why = g.stale(dev.last_sync, opts.checkin_max_age, self._clock())
            word = ring.get(dev.id, ("", ""))[0]
            if why is not None:
                out.append(DeviceStatus(host.name, False, "stale", why))
            elif word and word != "upToDate":
                out.append(
                    DeviceStatus(
                        host.name,
                        False,
                        word,
                        f"Windows Update says {word} (quality update {ring[dev.id][1] or '?'})",
                    )
                )
            else:
                out.append(
                    DeviceStatus(
                        host.name,
                        True,
                        word or "checked in",
                        f"build {dev.build}, last sync {dev.last_sync}",
                    )
                )
        return out

    # --- helpers ----------------------------------------------------------------------------

    def _load(self, key: str) -> Entry:
        entry = self._journal.load(key)
        if entry is None:
            raise IntuneError(f"intune: no journal entry for {key}: it was never submitted")
        return entry

    async def _devices(self, names: Sequence[str], *, strict: bool = True) -> dict[str, g.Device]:
        wanted, found, twice = set(names), {}, set()
        params = {"$filter": "operatingSystem eq 'Windows'"}
        async for item in self._client.pages(DEVICES, params):
            if item.get("deviceName") in wanted:
                dev = g.device(item)
                if dev.name in found:
                    twice.add(dev.name)
                found[dev.name] = dev
        if twice:
            raise IntuneRejected(
                "intune: several Intune devices are named " + ", ".join(sorted(twice))
            )
        missing = sorted(wanted - set(found))
        if missing and strict:
            raise IntuneRejected("intune: no Intune Windows device is named " + ", ".join(missing))
        return found

    async def _entries(self) -> list[g.Entry]:
        params = {"$filter": f"isof('{QUALITY}')", "$expand": f"{QUALITY}/productRevisions"}
        return [
            g.entry(e)
            async for e in self._client.pages(f"{WU}/catalog/entries", params)
            if e.get("@odata.type") == "#" + QUALITY
        ]

    async def _ring(self, opts: IntuneOptions) -> dict[str, tuple[str, str]]:
        """Intune device id -> (Windows Update status, quality update version)."""
        if opts.update_ring_id is None:
            return {}
        return {
            str(s.get("deviceId")): (
                str(s.get("status") or ""),
                str(s.get("qualityUpdateVersion") or ""),
            )
            async for s in self._client.pages(RING.format(opts.update_ring_id))
        }

    async def _plan(self, work: BatchWork, opts: IntuneOptions) -> Entry:
        names = [h.name for h in work.hosts]
        if not names:
            raise IntuneRejected("intune: a batch without hosts cannot be submitted")
        devices = await self._devices(names)
        entries = await self._entries()
        groups: dict[str, Rollout] = {}
        for name in names:
            dev = devices[name]
            if dev.aad_id is None:
                raise IntuneRejected(f"intune: host {name} has no Microsoft Entra device id")
            match = g.pinned(name, dev, dict(work.versions.get(name) or {}), entries)
            if opts.expedite and not match[0].expeditable:
                raise IntuneRejected(
                    f"intune: {match[0].short_name} cannot be expedited"
                    " (its catalog entry says isExpeditable false)"
                )
            kb = match[2]
            rollout = groups.setdefault(match[0].id, Rollout(match[0].id, opts.expedite, {}))
            rollout.hosts[name] = Target(dev.id, dev.aad_id, kb, match[1].build)
        now = dt.datetime.fromtimestamp(self._clock() - 5, dt.UTC).isoformat()
        return Entry(work.key, self._clock(), now.replace("+00:00", "Z"), list(groups.values()))

    async def _complete(self, entry: Entry, opts: IntuneOptions, *, resumed: bool = False) -> None:
        """Do what the journal does not record as done, in order, saving after each step.
        ``resumed`` (from ``follow``): a deployment Graph refuses to create is recorded as
        refused (its devices fail with the reason) instead of raised again at each poll."""
        if not entry.enrolled and not entry.halted:
            assets = [bodies.asset(t.aad_id) for d in entry.deployments for t in d.hosts.values()]
            await self._client.post(  # an idempotent action: retried like a GET
                f"{WU}/updatableAssets/enrollAssets",
                {"updateCategory": "quality", "assets": assets},
                idempotent=True,
            )
            entry.enrolled = True
            self._journal.save(entry)
        for dep in entry.deployments:
            if dep.deployment_id is None and not entry.halted and dep.refused is None:
                try:
                    made = await self._client.post(
                        f"{WU}/deployments", bodies.deployment(dep, opts)
                    )
                except IntuneUnavailable:
                    made = await self._lost(entry, dep)  # the answer may be lost: look first
                    if made is None:
                        raise
                except IntuneError as exc:
                    if not resumed:
                        raise
                    dep.refused = str(exc)
                    self._journal.save(entry)
                    continue
                if not isinstance(made, dict):
                    raise IntuneError(f"Intune: POST deployments answered {str(made)[:100]!r}")
                dep.deployment_id = g.safe_id(made.get("id"), "deployment id")
                audience = (made.get("audience") or {}).get("id")
                dep.audience_id = None if not audience else g.safe_id(audience, "audience id")
                self._journal.save(entry)
            if dep.deployment_id is not None and dep.audience_id is None:
                made = await self._client.get(
                    f"{WU}/deployments/{dep.deployment_id}", {"$expand": "audience"}
                )
                dep.audience_id = g.safe_id((made.get("audience") or {}).get("id"), "audience id")
                self._journal.save(entry)
            if dep.audience_id is not None and not dep.members_added and not entry.halted:
                members = {"addMembers": [bodies.asset(t.aad_id) for t in dep.hosts.values()]}
                await self._client.post(  # adding members again is harmless: retried
                    f"{WU}/deploymentAudiences/{dep.audience_id}/updateAudience",
                    members,
                    idempotent=True,
                )
                dep.members_added = True
                self._journal.save(entry)

    async def _lost(self, entry: Entry, dep: Rollout) -> dict[str, Any] | None:
        """The deployment a lost ``POST deployments`` created: of this catalog entry,
        created since the intent, not one this job has, and with an empty audience (ours
        get members only once their id is recorded; another batch's has its devices)."""
        mine = {d.deployment_id for d in entry.deployments}
        async for item in self._client.pages(f"{WU}/deployments"):
            content = item.get("content") or {}
            audience = (item.get("audience") or {}).get("id")
            if (
                (content.get("catalogEntry") or {}).get("id") == dep.entry_id
                and str(item.get("createdDateTime") or "") >= entry.created_after
                and item.get("id") not in mine
                and audience
            ):
                path = f"{WU}/deploymentAudiences/{g.safe_id(audience, 'audience id')}/members"
                if not [m async for m in self._client.pages(path)]:
                    return item
        return None

    async def _outcomes(
        self, entry: Entry, opts: IntuneOptions
    ) -> tuple[dict[str, str], dict[str, HostOutcome | None]]:
        return await judge(
            self._client,
            entry,
            opts,
            self._final.setdefault(entry.key, {}),
            self._clock(),
            self._ring,
        )


def _options(options: Mapping[str, Any]) -> IntuneOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise IntuneRejected(str(exc)) from exc
