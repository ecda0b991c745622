"""The NinjaOne backend: a batch is one OS patch apply per device.

NinjaOne's apply (``POST /v2/device/{id}/patch/os/apply``) takes no body: it installs
every patch that is APPROVED for the device (approval is the device policy's business;
the public API has no endpoint that approves a patch or names patches to install). So
PatchGate keeps "exactly the pinned set" by checking, before anything is posted, that
each device's approved patches (``GET /v2/device/{id}/os-patches?status=APPROVED``) are
exactly its pinned ones; a batch where any device differs is refused with the reason (a
pinned patch not approved, or an approved patch not pinned), and nothing is applied. An
apply that still installs more (a policy changed in between) fails the device.

Idempotency: the key lives in a local journal (:mod:`.journal`) written before the first
apply is posted (NinjaOne keeps no free text with an apply); the job id is the key.

``follow`` reads the install records of the batch's devices since the submit
(``GET /v2/queries/os-patch-installs``, ``df=id in (...)``, ``installedAfter``): all
pinned patches INSTALLED: applied; any FAILED: failed; none yet past ``apply_timeout``:
unreachable when the device is offline, else failed. Each device's result is kept in the
journal and, with ``scan_after``, followed by one OS patch scan.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from integrations.backends.keyfiles import KeyedJournal, follow_hosts
from integrations.backends.ninjaone import devices as dv
from integrations.backends.ninjaone.client import NinjaOneClient
from integrations.backends.ninjaone.errors import (
    NinjaOneError,
    NinjaOneRejected,
    NinjaOneUnavailable,
)
from integrations.backends.ninjaone.journal import DeviceApply, Entry
from integrations.backends.ninjaone.options import (
    NinjaOneOptions,
    capabilities,
    check_options,
    parse_options,
)
from integrations.backends.ninjaone.results import judge
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

NAME = dv.NAME
INSTALLS = "v2/queries/os-patch-installs"
# install records this many seconds before the submit still count (clock skew)
_SKEW = 5.0


class NinjaOneBackend:
    """Implements :class:`workflows.backends.BatchBackend` and
    :class:`~workflows.backends.StatusBackend` over a :class:`NinjaOneClient`."""

    name = NAME

    def __init__(
        self,
        client: NinjaOneClient,
        journal_dir: Path,
        *,
        poll_interval: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._journal = KeyedJournal(journal_dir, DeviceApply)
        self._poll = poll_interval
        self._sleep = sleep
        self._clock = clock

    async def close(self) -> None:
        await self._client.close()

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        _options(work.options)
        if work.action != "apply":
            raise NinjaOneRejected(
                f"ninjaone: cannot {work.action} (the public API has no OS patch uninstall,"
                " and PatchGate asks NinjaOne for no reboot: the device policy reboots)"
            )
        ref = JobRef(backend=NAME, job_id=work.key, key=work.key)
        if self._journal.load(work.key) is not None:
            return ref  # already submitted: never apply again
        names = [h.name for h in work.hosts]
        if not names:
            raise NinjaOneRejected("ninjaone: a batch without hosts cannot be submitted")
        found = await self._devices(names, strict=True)
        entry = Entry(work.key, work.action, self._clock(), {})
        problems: list[str] = []
        for name in names:
            pinned = dict(work.versions.get(name) or {})
            dev = found[name]
            problem = await self._exact(dev, pinned) if pinned else "no pinned patches"
            if problem:
                problems.append(f"{name}: {problem}")
            entry.devices[name] = DeviceApply(dev.id, pinned)
        if problems:
            raise NinjaOneRejected(
                "ninjaone: NinjaOne's apply installs every approved patch of a device and"
                " cannot be given a list, so each device's approved patches must be exactly"
                " its pinned ones; nothing was applied: " + "; ".join(problems)
            )
        self._journal.save(entry)  # the intent, before anything is posted
        for apply in entry.devices.values():
            await self._apply(apply)
            self._journal.save(entry)
        log.info("NinjaOne apply posted for %s on %d devices", work.key, len(names))
        return ref

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        return None if self._journal.load(key) is None else JobRef(NAME, key, key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        opts = _options(options)
        entry = self._journal.load(job.key)
        if entry is None:
            raise NinjaOneError(f"ninjaone: no journal entry for {job.key}: it was never submitted")

        async def step() -> dict[str, HostOutcome | None]:
            await self._progress(entry, opts)
            self._journal.save(entry)
            return {h: _outcome(h, a.result) for h, a in entry.devices.items()}

        return await follow_hosts(
            job, step, wait=wait, poll=self._poll, sleep=self._sleep, pending="applying"
        )

    # --- what NinjaOne knows ------------------------------------------------------------------

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        found = await self._devices([h.name for h in hosts], strict=False)
        online = [d for d in found.values() if not d.offline]
        pending: dict[int, list[dv.Patch]] = {d.id: [] for d in online}
        error: str | None = None
        if online:
            try:
                query = {"df": _ids(d.id for d in online)}
                async for item in self._client.cursor_pages("v2/queries/os-patches", query):
                    p = dv.patch(item)
                    if p.device_id in pending:
                        pending[p.device_id].append(p)
            except NinjaOneError as exc:
                error = str(exc)
        out = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                out.append(HostAssessment(host.name, False, error="not a NinjaOne device"))
            elif dev.offline:
                out.append(HostAssessment(host.name, False, error=dv.offline_why(dev)))
            elif error is not None:
                out.append(HostAssessment(host.name, True, error=error))
            else:
                out.append(dv.assessment(dev, pending[dev.id]))
        return out

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        opts = _options(options)
        orgs: dict[int, str] = {}
        async for o in self._client.after_pages("v2/organizations"):
            if isinstance(o.get("id"), int):
                orgs[o["id"]] = str(o.get("name") or f"organization {o['id']}")
        query = {"df": opts.device_filter} if opts.device_filter else None
        return [
            dv.inventory_host(dv.device(d), orgs)
            async for d in self._client.after_pages("v2/devices-detailed", query)
        ]

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        opts = _options(options)
        found = await self._devices([h.name for h in hosts], strict=False)
        out = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                out.append(DeviceStatus(host.name, False, "unknown", "not a NinjaOne device"))
                continue
            try:
                dev = dv.device(await self._client.get(f"v2/device/{dev.id}"))
            except NinjaOneError as exc:
                out.append(DeviceStatus(host.name, False, "error", str(exc)))
                continue
            out.append(_status(host.name, dev, opts, self._clock()))
        return out

    # --- helpers ----------------------------------------------------------------------------

    async def _devices(self, names: Sequence[str], *, strict: bool) -> dict[str, dv.Device]:
        wanted = {n.casefold(): n for n in names}  # Windows computer names ignore case
        every: dict[str, dv.Device] = {}
        twice: set[str] = set()
        async for item in self._client.after_pages("v2/devices-detailed"):
            name = item.get("systemName")
            if isinstance(name, str) and name.casefold() in wanted:
                dev = dv.device(item)
                key = wanted[name.casefold()]
                if key in every:
                    twice.add(key)
                every[key] = dev
        if twice:
            raise NinjaOneRejected(
                "ninjaone: several devices are named " + ", ".join(sorted(twice))
            )
        missing = sorted(set(names) - set(every))
        if missing and strict:
            raise NinjaOneRejected("ninjaone: no NinjaOne device is named " + ", ".join(missing))
        return every

    async def _exact(self, dev: dv.Device, pinned: Mapping[str, str | None]) -> str | None:
        """Why NinjaOne's apply would not install exactly ``pinned`` on ``dev``, or None."""
        listed = await self._client.get(f"v2/device/{dev.id}/os-patches", {"status": "APPROVED"})
        if not isinstance(listed, list):
            raise NinjaOneError(f"NinjaOne GET v2/device/{dev.id}/os-patches is not a list")
        approved = {p.key for p in map(dv.patch, listed) if p.status == "APPROVED"}
        wanted = {dv.kb_number(k) or k for k in pinned}
        why = []
        if wanted - approved:
            why.append(
                "pinned but not approved in NinjaOne: " + ", ".join(sorted(wanted - approved))
            )
        if approved - wanted:
            why.append(
                "approved in NinjaOne but not pinned: " + ", ".join(sorted(approved - wanted))
            )
        return " and ".join(why) or None

    async def _apply(self, apply: DeviceApply) -> None:
        try:
            await self._client.post(f"v2/device/{apply.device_id}/patch/os/apply")
            apply.posted = True
        except NinjaOneUnavailable as exc:  # the answer is lost: follow posts it again
            log.warning("NinjaOne apply on device %s not confirmed: %s", apply.device_id, exc)
        except NinjaOneError as exc:  # 400 "not applicable for os apply", 404, ...
            apply.result = {"status": "failed", "output": str(exc), "failed_task": "os apply"}

    async def _progress(self, entry: Entry, opts: NinjaOneOptions) -> None:
        late = self._clock() - entry.submitted_at > opts.apply_timeout
        for apply in entry.devices.values():
            if apply.result is None and not apply.posted:
                await self._apply(apply)
                if not apply.posted and apply.result is None and late:
                    apply.result = {
                        "status": "failed",
                        "output": "NinjaOne never confirmed the OS patch apply on device"
                        f" {apply.device_id} within {opts.apply_timeout:g}s",
                        "failed_task": "os apply",
                    }
        waiting = {h: a for h, a in entry.devices.items() if a.result is None and a.posted}
        if not waiting:
            return
        records: dict[int, list[dv.Patch]] = {a.device_id: [] for a in waiting.values()}
        query: dict[str, str | int] = {
            "df": _ids(records),
            "installedAfter": int(entry.submitted_at - _SKEW),
        }
        try:
            async for item in self._client.cursor_pages(INSTALLS, query):
                rec = dv.patch(item)
                if rec.device_id in records:
                    records[rec.device_id].append(rec)
        except NinjaOneUnavailable as exc:  # busy or down: ask again next time
            log.info("NinjaOne: install records not read this time (%s)", exc)
            return
        except NinjaOneError as exc:  # a changed shape: every waiting device's error
            for apply in waiting.values():
                apply.result = {"status": "failed", "output": str(exc)}
            return
        for host, apply in waiting.items():
            pinned = [dv.kb_number(k) or k for k in apply.patches]
            verdict = judge(host, pinned, records[apply.device_id])
            if verdict.outcome is not None:
                apply.result = _stored(verdict.outcome)
            elif late:
                apply.result = await self._late(apply, verdict.missing, opts)
            if apply.result is not None and opts.scan_after and not apply.scanned:
                try:
                    await self._client.post(f"v2/device/{apply.device_id}/patch/os/scan")
                    apply.scanned = True
                except NinjaOneError as exc:  # the result stands; the scan is a courtesy
                    log.info("NinjaOne scan of device %s not started: %s", apply.device_id, exc)

    async def _late(
        self, apply: DeviceApply, missing: Sequence[str], opts: NinjaOneOptions
    ) -> dict[str, Any]:
        what = f"no install record of {', '.join(missing)} after {opts.apply_timeout:g}s"
        try:
            dev = dv.device(await self._client.get(f"v2/device/{apply.device_id}"))
        except NinjaOneError as exc:
            return {"status": "failed", "output": f"{what}; the device: {exc}"}
        if dev.offline:
            return {"status": "unreachable", "output": f"{what}: {dv.offline_why(dev)}"}
        return {"status": "failed", "output": what, "failed_task": "os apply timed out"}


def _options(options: Mapping[str, Any]) -> NinjaOneOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise NinjaOneRejected(str(exc)) from exc


def _ids(ids: Iterable[int]) -> str:
    """NinjaOne's device filter for these device ids."""
    return "id in (" + ",".join(str(i) for i in sorted(ids)) + ")"


def _stored(outcome: HostOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "output": outcome.output,
        "failed_task": outcome.failed_task,
        "after": dict(outcome.after),
    }


def _outcome(host: str, result: Mapping[str, Any] | None) -> HostOutcome | None:
    if result is None:
        return None
    return HostOutcome(
        host=host,
        status=result["status"],
        after=dict(result.get("after") or {}),
        output=str(result.get("output") or ""),
        failed_task=result.get("failed_task"),
    )


def _status(host: str, dev: dv.Device, opts: NinjaOneOptions, now: float) -> DeviceStatus:
    if dev.offline:
        return DeviceStatus(host, False, "offline", dv.offline_why(dev))
    if dev.last_contact is not None and now - dev.last_contact > opts.contact_age:
        age = now - dev.last_contact
        return DeviceStatus(
            host, False, "stale", f"no contact from the NinjaOne agent for {age:.0f}s"
        )
    if dev.needs_reboot:
        return DeviceStatus(host, False, "reboot pending", "the OS reports a pending reboot")
    return DeviceStatus(host, True, "online")
