"""The Automox backend: a batch is one device command per device.

``submit`` queues ``InstallUpdate`` on each device of the batch with ``args`` naming the
batch's pinned packages for it (``POST /servers/{id}/queues``), or ``Reboot``. A policy
run is not used: ``remediateServer`` runs a whole policy (its own package filter) on a
device, not the pinned set. Rollback is declared impossible: Automox cannot install an
older version.

Idempotency: Automox stores no free text with a command, so the job key is kept in a
local journal (:mod:`.journal`) written before the first command is queued; the job id
PatchGate sees is the key itself. A POST whose answer is lost is not retried blindly:
the device's queue is read first, and a command of the same type and arguments queued
since the job began is taken as ours.

``follow`` reads each device's queue: a command without ``response_time`` is still
pending (past ``command_timeout`` its device counts unreachable); a finished one, or one
gone from the queue, is judged by the device's packages (``installed`` versions of the
pinned packages) — the device's own state, not the command's text, decides ``applied``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from integrations.backends.automox import devices as dv
from integrations.backends.automox.client import AutomoxClient
from integrations.backends.automox.errors import AutomoxError, AutomoxRejected, AutomoxUnavailable
from integrations.backends.automox.journal import DeviceCommand, Entry
from integrations.backends.automox.options import (
    AutomoxOptions,
    capabilities,
    check_options,
    parse_options,
)
from integrations.backends.keyfiles import KeyedJournal, follow_hosts
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

NAME = "automox"
_SAFE_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+:~-]*")
_COMMANDS = {"apply": "InstallUpdate", "reboot": "Reboot"}


class AutomoxBackend:
    """Implements :class:`workflows.backends.BatchBackend` over an :class:`AutomoxClient`."""

    name = NAME

    def __init__(
        self,
        client: AutomoxClient,
        journal_dir: Path,
        *,
        poll_interval: float = 30.0,
        queue_attempts: int = 3,
        device_cache_ttl: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._journal = KeyedJournal(journal_dir, DeviceCommand)
        self._poll = poll_interval
        self._queue_attempts = max(1, queue_attempts)
        self._sleep = sleep
        self._clock = clock
        self._final: dict[str, dict[str, HostOutcome]] = {}
        # GET /servers is rate limited (< 30 a minute): a submit reuses the listing for
        # ``device_cache_ttl`` seconds (ids only; connectivity is read per device later).
        self._cache_ttl = device_cache_ttl
        self._cache: tuple[float, dict[str, dv.Device]] | None = (
            None  # key -> host -> final outcome
        )

    async def close(self) -> None:
        await self._client.close()

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        opts = _options(work.options)
        command = _COMMANDS.get(work.action)
        if command is None:
            raise AutomoxRejected(f"automox: cannot {work.action} (Automox has no such command)")
        if command == "Reboot" and not opts.reboot:
            raise AutomoxRejected("automox: reboots are turned off for this plan (automox.reboot)")
        ref = JobRef(backend=NAME, job_id=work.key, key=work.key)
        if self._journal.load(work.key) is not None:
            return ref  # already submitted: never queue again
        names = [h.name for h in work.hosts]
        if not names:
            raise AutomoxRejected("automox: a batch without hosts cannot be submitted")
        found = await self._devices(names, cached=True)
        entry = Entry(work.key, work.action, self._clock(), {})
        for name in names:
            packages = dict(work.versions.get(name) or {}) if command == "InstallUpdate" else {}
            args = None
            if command == "InstallUpdate":
                bad = [p for p in packages if not _SAFE_PACKAGE.fullmatch(p)]
                if not packages or bad:
                    raise AutomoxRejected(
                        f"automox: host {name}: "
                        + (f"unusable package names {bad}" if bad else "no pinned packages")
                    )
                args = " ".join(sorted(packages))
            entry.devices[name] = DeviceCommand(found[name].id, command, args, packages)
        self._journal.save(entry)  # the intent, before anything is queued
        for name in names:
            await self._queue(entry, entry.devices[name])
            self._journal.save(entry)
        log.info("Automox %s queued for %s on %d devices", command, work.key, len(names))
        return ref

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        return None if self._journal.load(key) is None else JobRef(NAME, key, key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        opts = _options(options)
        entry = self._journal.load(job.key)
        if entry is None:
            raise AutomoxError(f"automox: no journal entry for {job.key}: it was never submitted")

        async def read() -> dict[str, HostOutcome | None]:
            outcomes = await self._outcomes(entry, opts)
            self._journal.save(entry)
            return outcomes

        return await follow_hosts(
            job, read, wait=wait, poll=self._poll, sleep=self._sleep, pending="queued"
        )

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        found = await self._devices([h.name for h in hosts], strict=False)
        result = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                result.append(HostAssessment(host.name, False, error="not an Automox device"))
            elif not dev.connected:
                result.append(HostAssessment(host.name, False, error=dv.disconnected_why(dev)))
            else:
                try:
                    packages = [p async for p in self._client.pages(f"servers/{dev.id}/packages")]
                    result.append(dv.assessment(dev, packages))
                except AutomoxError as exc:
                    result.append(HostAssessment(host.name, True, error=str(exc)))
        return result

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        """Each device read afresh (``GET /servers/{id}``): see :func:`.devices.device_status`."""
        opts = _options(options)
        try:
            found = await self._devices([h.name for h in hosts], strict=False)
        except AutomoxError as exc:  # the listing itself: every host's failed status
            return [DeviceStatus(h.name, False, "unknown", str(exc)) for h in hosts]
        out: list[DeviceStatus] = []
        for host in hosts:
            dev = found.get(host.name)
            if dev is None:
                out.append(DeviceStatus(host.name, False, "unknown", "not an Automox device"))
                continue
            try:
                raw = await self._client.get(f"servers/{dev.id}")
            except AutomoxError as exc:
                out.append(DeviceStatus(host.name, False, "error", str(exc)))
                continue
            out.append(dv.device_status(host.name, raw, require_compliant=opts.require_compliant))
        return out

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        groups: dict[int, str] = {}
        async for g in self._client.pages("servergroups"):
            if isinstance(g.get("id"), int):
                groups[g["id"]] = str(g.get("name") or "Default")
        return [
            dv.inventory_host(dv.device(d), groups) async for d in self._client.pages("servers")
        ]

    # --- helpers ----------------------------------------------------------------------------

    async def _devices(
        self, names: Sequence[str], *, strict: bool = True, cached: bool = False
    ) -> dict[str, dv.Device]:
        wanted = set(names)
        now = time.monotonic()
        if cached and self._cache is not None and now - self._cache[0] < self._cache_ttl:
            every = self._cache[1]
        else:
            every, twice = {}, set()
            async for item in self._client.pages("servers"):
                dev = dv.device(item) if item.get("name") in wanted or cached else None
                if dev is not None:
                    if dev.name in every:
                        twice.add(dev.name)
                    every[dev.name] = dev
            for name in twice:  # ambiguous: never picked by name
                every.pop(name)
            if twice & wanted:
                raise AutomoxRejected(
                    "automox: several devices are named " + ", ".join(sorted(twice & wanted))
                )
            if cached:
                self._cache = (now, every)
        found = {n: every[n] for n in wanted if n in every}
        missing = sorted(wanted - set(found))
        if missing and strict:
            raise AutomoxRejected("automox: no Automox device is named " + ", ".join(missing))
        return found

    async def _queued(self, device_id: int) -> list[dict[str, Any]]:
        data = await self._client.get(f"servers/{device_id}/queues")
        if not isinstance(data, list):
            raise AutomoxError(f"Automox GET servers/{device_id}/queues did not answer a list")
        return [c for c in data if isinstance(c, dict)]

    def _ours(self, cmd: DeviceCommand, queue: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in queue:
            if cmd.command_id is not None:
                if item.get("id") == cmd.command_id:
                    return item
            elif (
                item.get("command_type_name") == cmd.command_type_name
                and (item.get("args") or None) == cmd.args
            ):
                return item
        return None

    async def _queue(self, entry: Entry, cmd: DeviceCommand) -> None:
        body: dict[str, Any] = {"command_type_name": cmd.command_type_name}
        if cmd.args is not None:
            body["args"] = cmd.args
        for attempt in range(1, self._queue_attempts + 1):
            try:
                answer = await self._client.post(f"servers/{cmd.device_id}/queues", body)
            except AutomoxUnavailable as exc:
                mine = self._ours(cmd, await self._queued(cmd.device_id))
                if mine is not None:  # the answer was lost, the command was queued
                    cmd.command_id, cmd.queued = _id(mine), True
                    return
                if attempt == self._queue_attempts:
                    raise AutomoxUnavailable(
                        f"automox: queuing {cmd.command_type_name} on device {cmd.device_id}"
                        f" failed {attempt} time(s) ({exc}); its queue does not list it",
                        status=exc.status,
                    ) from exc
                await self._sleep(exc.retry_after if exc.retry_after is not None else 2.0)
                continue
            cmd.queued = True
            cmd.command_id = _id(answer) if isinstance(answer, dict) else None
            if cmd.command_id is None:
                mine = self._ours(cmd, await self._queued(cmd.device_id))
                cmd.command_id = None if mine is None else _id(mine)
            return

    async def _outcomes(self, entry: Entry, opts: AutomoxOptions) -> dict[str, HostOutcome | None]:
        final = self._final.setdefault(entry.key, {})  # a device's result is read once
        out: dict[str, HostOutcome | None] = {}
        for host, cmd in entry.devices.items():
            if host in final:
                out[host] = final[host]
                continue
            outcome: HostOutcome | None
            try:
                outcome = await self._outcome(entry, host, cmd, opts)
            except AutomoxUnavailable as exc:  # Automox is busy or down: ask again later
                log.info("Automox: %s not followed this time (%s)", host, exc)
                outcome = None
            except AutomoxError as exc:  # a changed shape or a lost device: this host's error
                outcome = HostOutcome(host=host, status="failed", output=str(exc))
            out[host] = outcome
            if outcome is not None:
                final[host] = outcome
        return out

    async def _outcome(
        self, entry: Entry, host: str, cmd: DeviceCommand, opts: AutomoxOptions
    ) -> HostOutcome | None:
        mine = self._ours(cmd, await self._queued(cmd.device_id))
        if mine is not None:
            cmd.command_id, cmd.queued = _id(mine), True
            if mine.get("response_time") is None:
                if self._clock() - entry.submitted_at < opts.command_timeout:
                    return None
                dev = dv.device(await self._client.get(f"servers/{cmd.device_id}"))
                why = dv.disconnected_why(dev) if not dev.connected else "the agent never ran it"
                return HostOutcome(
                    host=host,
                    status="unreachable",
                    output=f"{cmd.command_type_name} still queued after"
                    f" {opts.command_timeout:g}s: {why}",
                )
        said = "" if mine is None else str(mine.get("response") or "")
        response = f"Automox command {cmd.command_id} on device {cmd.device_id}" + (
            f": {said}" if said else ""
        )
        dev = dv.device(await self._client.get(f"servers/{cmd.device_id}"))
        if cmd.command_type_name == "Reboot":
            if mine is None and not cmd.queued:
                return HostOutcome(host=host, status="failed", output="the Reboot was never queued")
            return HostOutcome(host=host, status="applied", output=response)
        packages = [p async for p in self._client.pages(f"servers/{cmd.device_id}/packages")]
        installed = dv.installed_versions(packages, cmd.device_id)
        after: dict[str, str | None] = {p: installed.get(p) for p in cmd.packages}
        wrong = sorted(p for p, v in cmd.packages.items() if after[p] != v)
        if not wrong:
            return HostOutcome(
                host=host,
                status="applied",
                after=after,
                output=response,
                reboot_required=dev.needs_reboot,
            )
        why = (
            "the InstallUpdate command was never queued (PatchGate stopped before Automox"
            " answered) and is not queued again"
            if mine is None and not cmd.queued
            else f"InstallUpdate finished but {', '.join(wrong)} not at the pinned version"
        )
        return HostOutcome(
            host=host,
            status="failed",
            after=after,
            output=f"{why}{': ' + response if response else ''}",
            failed_task="InstallUpdate",
        )


def _id(item: Mapping[str, Any]) -> int | None:
    value = item.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _options(options: Mapping[str, Any]) -> AutomoxOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise AutomoxRejected(str(exc)) from exc
