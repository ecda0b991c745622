"""The Satellite / Foreman + Katello backend: a batch is one remote execution job
invocation (``POST /api/job_invocations``).

``submit`` resolves the batch's host names to Satellite ids and invokes the plan's
``apply_feature`` (``katello_package_install``, input ``package``: the pinned
``name-version`` list, identical for every host of the batch) or its ``reboot_feature``
(``power_action``, input ``action=restart``) on ``search_query: id ^ (ids)``, with the
key in the invocation's description (``description_format: "PatchGate <key>"``).
``find`` searches job invocations by that description. ``follow`` waits for the
invocation's foreman task to stop, then reads each host's status and output and, for
an apply, the host's installed versions of the pinned packages from Katello.

Rollback is not offered: Katello documents no job that puts recorded versions back.
``status`` (the ``tool`` health check) and ``halt`` (a job invocation cancelled) are
in :mod:`.status`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from integrations.backends.satellite import content, status
from integrations.backends.satellite.client import SatelliteClient
from integrations.backends.satellite.errors import (
    SatelliteError,
    SatelliteLaunchUnknown,
    SatelliteRejected,
    SatelliteUnavailable,
)
from integrations.backends.satellite.options import (
    SatelliteOptions,
    capabilities,
    check_options,
    parse_options,
    unsafe_host_names,
)
from workflows.backends import (
    BatchWork,
    Capabilities,
    DeviceStatus,
    HostAssessment,
    HostOutcome,
    HostStatus,
    JobRef,
    JobStatus,
)
from workflows.ports import InventoryHost

log = logging.getLogger(__name__)

NAME = "satellite"
DESCRIPTION = "PatchGate {key}"
OUTPUT_LIMIT = 4000
_NEVRA = re.compile(r"(.+?)-\d+:[^\s]+$")
_EXIT = re.compile(r"Exit status: (\d+)")
_UNREACHABLE = re.compile(
    r"Failed to initialize|ConnectionTimeout|Connection refused|No route to host|"
    r"Failed to establish connection|Could not connect",
    re.IGNORECASE,
)


class SatelliteBackend:
    """Implements :class:`workflows.backends.BatchBackend` over a :class:`SatelliteClient`."""

    name = NAME

    def __init__(
        self,
        client: SatelliteClient,
        *,
        poll_interval: float = 5.0,
        launch_settle: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], Any] | None = None,
    ) -> None:
        self._client = client
        self._poll = poll_interval
        self._launch_settle = launch_settle
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now

    async def close(self) -> None:
        await self._client.close()

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        opts = _options(work.options)
        names = [h.name for h in work.hosts]
        if not names:
            raise SatelliteRejected("satellite: a batch without hosts cannot be submitted")
        bad = unsafe_host_names(names)
        if bad:
            raise SatelliteRejected("satellite: host names unusable in a search: " + ", ".join(bad))
        feature, inputs = _job(work, opts)
        ids = await content.host_ids(self._client, names, opts.organization_id)
        missing = sorted(set(names) - set(ids))
        if missing:
            raise SatelliteRejected(
                "satellite: hosts Satellite does not know: " + ", ".join(missing)
            )
        body: dict[str, Any] = {
            "feature": feature,
            "inputs": inputs,
            "targeting_type": "static_query",
            "search_query": f"id ^ ({','.join(str(ids[n]) for n in names)})",
            "description_format": DESCRIPTION.format(key=work.key),
        }
        if opts.concurrency_level is not None:
            body["concurrency_control"] = {"concurrency_level": opts.concurrency_level}
        job_id = await self._invoke(work.key, {"job_invocation": body}, opts)
        log.info("Satellite job invocation %s for %s (%d hosts)", job_id, work.key, len(names))
        return JobRef(backend=NAME, job_id=str(job_id), key=work.key)

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        job_id = await self._find(key)
        return None if job_id is None else JobRef(backend=NAME, job_id=str(job_id), key=key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        detail, state = await self._wait(job.job_id, wait)
        if state != "stopped":
            return JobStatus(job=job, done=False, state=str(detail.get("status_label") or state))
        if detail.get("description") != DESCRIPTION.format(key=job.key):
            raise SatelliteError(
                f"Satellite job invocation {job.job_id} does not carry {job.key!r}"
            )
        targeting = detail.get("targeting")
        hosts = targeting.get("hosts") if isinstance(targeting, Mapping) else None
        if not isinstance(hosts, list):
            raise SatelliteError(f"Satellite job invocation {job.job_id} lists no targeted hosts")
        pinned = _pinned_names(detail)
        outcomes: dict[str, HostOutcome] = {}
        for host in hosts:
            outcomes[str(host.get("name"))] = await self._outcome(job.job_id, host, pinned)
        label = str(detail.get("status_label") or "stopped")
        return JobStatus(job=job, done=True, state=label, hosts=outcomes)

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        opts = _options(options)
        names = [h.name for h in hosts]
        bad = set(unsafe_host_names(names))
        ids = await content.host_ids(
            self._client, [n for n in names if n not in bad], opts.organization_id
        )
        out: list[HostAssessment] = []
        for name in names:
            if name not in ids:
                error = "Satellite does not know this host" if name not in bad else "unsafe name"
                out.append(HostAssessment(host=name, reachable=False, error=error))
                continue
            try:
                errata = [e async for e in self._client.pages(f"/api/v2/hosts/{ids[name]}/errata")]
                installed = await content.installed_versions(self._client, ids[name])
                out.append(
                    HostAssessment(
                        host=name,
                        reachable=True,
                        upgradable=content.upgradable(errata, installed),
                        advisories=content.advisories(errata),
                    )
                )
            except SatelliteError as exc:
                out.append(HostAssessment(host=name, reachable=True, error=str(exc)))
        return out

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        opts = _options(options)
        now = self._clock()
        rows = await content.list_hosts(self._client, opts.host_search, opts.organization_id)
        return [
            content.inventory_host(r, now=now, stale_hours=opts.stale_checkin_hours) for r in rows
        ]

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        return await status.host_status(self._client, hosts, _options(options), self._clock())

    async def halt(self, job: JobRef, options: Mapping[str, Any], *, reason: str) -> None:
        await status.cancel(self._client, job, reason)

    def _clock(self) -> dt.datetime:
        return self._now() if self._now else dt.datetime.now(dt.UTC)

    # --- helpers ----------------------------------------------------------------------------

    async def _invoke(self, key: str, body: Mapping[str, Any], opts: SatelliteOptions) -> int:
        try:
            data = await self._client.post("/api/job_invocations", body)
        except SatelliteUnavailable as exc:
            # The invocation may have been created: look for the key before anything else.
            if exc.status is None and self._launch_settle > 0:
                await self._sleep(self._launch_settle)
            try:
                found = await self._find(key)
            except SatelliteError as lookup:
                raise SatelliteLaunchUnknown(
                    f"satellite: the job invocation for {key} may exist ({exc}) and Satellite"
                    f" could not be searched for it ({lookup}); find it by its key later"
                ) from exc
            if found is not None:
                log.info("Satellite answer for %s lost; found invocation %s", key, found)
                return found
            raise SatelliteUnavailable(
                f"satellite: the job invocation for {key} failed ({exc}); none carries its"
                " key, so submitting again is safe",
                status=exc.status,
                retry_after=exc.retry_after,
            ) from exc
        job_id = data.get("id")
        if not isinstance(job_id, int):
            raise SatelliteError("Satellite answered a job invocation without an id")
        return job_id

    async def _find(self, key: str) -> int | None:
        description = DESCRIPTION.format(key=key)
        params = {"search": f'description ~ "{key}"', "order": "id DESC"}
        async for item in self._client.pages("/api/job_invocations", params):
            if item.get("description") == description and isinstance(item.get("id"), int):
                return int(item["id"])
        return None

    async def _wait(self, job_id: str, wait: float) -> tuple[dict[str, Any], str]:
        deadline = self._monotonic() + max(0.0, wait)
        while True:
            detail = await self._client.get(f"/api/job_invocations/{job_id}")
            task = detail.get("task") or detail.get("dynflow_task")
            if not isinstance(task, Mapping) or not task.get("id"):
                raise SatelliteError(f"Satellite job invocation {job_id} has no task")
            state = str(
                (await self._client.get(f"/foreman_tasks/api/tasks/{task['id']}")).get("state")
            )
            if state == "stopped":  # read again with the hosts' (now final) job_status
                final = await self._client.get(
                    f"/api/job_invocations/{job_id}", {"host_status": "true"}
                )
                return final, state
            if deadline - self._monotonic() <= 0:
                return detail, state
            await self._sleep(min(self._poll, max(0.0, deadline - self._monotonic())))

    async def _outcome(
        self, job_id: str, host: Mapping[str, Any], pinned: Sequence[str]
    ) -> HostOutcome:
        name = str(host.get("name"))
        host_id = host.get("id")
        data = await self._client.get(f"/api/job_invocations/{job_id}/hosts/{host_id}")
        lines = data.get("output") if isinstance(data.get("output"), list) else []
        assert isinstance(lines, list)
        text = "".join(str(x.get("output") or "") for x in lines if isinstance(x, Mapping))
        codes = _EXIT.findall(text)
        exit_code = int(codes[-1]) if codes else None
        job_status = str(host.get("job_status") or "")
        status: HostStatus
        if job_status == "success" or (not job_status and exit_code == 0):
            status = "applied"
        elif _UNREACHABLE.search(text):
            status = "unreachable"
        else:
            status = "failed"
        after: dict[str, str | None] = {}
        if pinned and status != "unreachable" and isinstance(host_id, int):
            found = await content.installed_versions(self._client, host_id, pinned)
            after = {p: found.get(p) for p in pinned}
        tail = text[-OUTPUT_LIMIT:]
        return HostOutcome(
            host=name,
            status=status,
            after=after,
            output="" if status == "applied" else tail or f"job status {job_status or '?'}",
            failed_task=f"remote execution: {job_status or 'failed'}"
            if status == "failed"
            else None,
            exit_code=exit_code if status == "failed" else None,
        )


def _job(work: BatchWork, opts: SatelliteOptions) -> tuple[str, dict[str, str]]:
    if work.action == "reboot":
        if not opts.reboot:
            raise SatelliteRejected("satellite: reboots are off for this plan (reboot: false)")
        return opts.reboot_feature, {"action": "restart"}
    if work.action != "apply":
        raise SatelliteRejected(
            f"satellite: cannot {work.action}: Katello documents no job that puts recorded"
            " package versions back"
        )
    shares = {tuple(sorted(v.items())) for v in work.versions.values()}
    if len(shares) != 1:
        raise SatelliteRejected(
            "satellite: one job invocation gives every host the same packages; this batch's"
            " hosts have different shares of the pinned set (batch them by platform)"
        )
    (share,) = shares
    packages = []
    for name, version in share:
        if version is None or not re.fullmatch(r"[A-Za-z0-9._+:~^-]+", f"{name}-{version}"):
            raise SatelliteRejected(f"satellite: cannot pin {name!r} to {version!r}")
        epoched = version if re.match(r"\d+:", version) else f"0:{version}"
        packages.append(f"{name}-{epoched}")
    return opts.apply_feature, {"package": " ".join(packages)}


def _pinned_names(detail: Mapping[str, Any]) -> list[str]:
    """The package names an apply invocation installs, from its ``package`` input
    (``template_invocations[].input_values[]``), written ``name-epoch:version[-release]``."""
    names: list[str] = []
    for invocation in detail.get("template_invocations") or ():
        for value in (invocation or {}).get("input_values") or ():
            if isinstance(value, Mapping) and value.get("template_input_name") == "package":
                for item in str(value.get("value") or "").split():
                    match = _NEVRA.match(item)
                    if not match:
                        raise SatelliteError(f"Satellite: package input {item!r} is not ours")
                    if match.group(1) not in names:
                        names.append(match.group(1))
    return names


def _options(options: Mapping[str, Any]) -> SatelliteOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise SatelliteRejected(str(exc)) from exc
