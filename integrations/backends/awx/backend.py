"""The AWX / Ansible Automation Platform backend: a batch is one job template launch.

``submit`` launches the plan's job template for the action (``job_template``,
``rollback_job_template``, ``reboot_job_template``) with ``limit`` = the batch's host
names joined by commas and ``extra_vars`` carrying the versions per host, the
rollout/ring/batch ids and the marker ``patchgate_key`` (docs/awx.md). Before launching
it checks the template prompts for limit and variables on launch: a template that does
not would ignore the limit and run on its whole inventory.

A launch is not retried blindly: when its answer is lost (connection dropped, timeout,
429/5xx) the backend first looks for a job carrying the key and only launches again
when there is none. ``find`` does the same after a crash: AWX refuses filters on
``extra_vars`` (its field is ``prevent_search``), so it lists the configured templates'
jobs newest first (``job_template__in``, ``order_by=-id``) and reads each job's
``extra_vars`` (from the list where the AWX version includes it, else from the job).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from integrations.backends.awx import results
from integrations.backends.awx.client import AwxClient
from integrations.backends.awx.errors import (
    AwxError,
    AwxLaunchUnknown,
    AwxRejected,
    AwxUnavailable,
)
from integrations.backends.awx.inventory import inventory_hosts, parse_variables
from integrations.backends.awx.options import (
    AwxOptions,
    TemplateRef,
    capabilities,
    check_options,
    parse_options,
    unsafe_host_names,
)
from workflows.backends import BatchWork, Capabilities, HostAssessment, JobRef, JobStatus
from workflows.errors import InventoryError
from workflows.ports import InventoryHost

log = logging.getLogger(__name__)

NAME = "awx"
_PROMPTS = {"limit": "ask_limit_on_launch", "extra_vars": "ask_variables_on_launch"}


class AwxBackend:
    """Implements :class:`workflows.backends.BatchBackend` over an :class:`AwxClient`."""

    name = NAME

    def __init__(
        self,
        client: AwxClient,
        *,
        poll_interval: float = 5.0,
        find_scan: int = 200,
        launch_attempts: int = 3,
        launch_settle: float = 5.0,
        max_launch_wait: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._poll = poll_interval
        self._find_scan = find_scan
        self._launch_attempts = max(1, launch_attempts)
        self._launch_settle = launch_settle
        self._max_launch_wait = max_launch_wait
        self._sleep = sleep
        self._monotonic = monotonic
        self._template_ids: dict[str, int] = {}

    async def close(self) -> None:
        """Close the client's HTTP session (serve's exit)."""
        await self._client.close()

    # --- pure -------------------------------------------------------------------------------

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        opts = _options(work.options)
        ref = opts.template_for(work.action)
        if ref is None:
            raise AwxRejected(f"awx: no {work.action}_job_template is configured for this plan")
        names = [h.name for h in work.hosts]
        if not names:
            raise AwxRejected("awx: a batch without hosts cannot be launched")
        bad = unsafe_host_names(names)
        if bad:
            raise AwxRejected(
                "awx: host names that are not plain names in an Ansible limit: " + ", ".join(bad)
            )
        extra_vars: dict[str, Any] = {
            "patchgate_key": work.key,
            "patchgate_action": work.action,
            "patchgate_rollout_id": work.rollout_id,
            "patchgate_ring": work.ring,
            "patchgate_batch": work.batch,
            "patchgate_patchset_hash": work.patchset_hash,
            "patchgate_hosts": names,
            "patchgate_versions": {h: dict(v) for h, v in work.versions.items()},
        }
        template = await self._template_id(ref)
        job_id = await self._launch(template, work.key, names, extra_vars, opts)
        log.info(
            "AWX job %s launched for %s (%s, %d hosts)", job_id, work.key, work.action, len(names)
        )
        return JobRef(backend=NAME, job_id=str(job_id), key=work.key)

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        opts = _options(options)
        templates = [await self._template_id(ref) for ref in opts.templates()]
        job_id = await self._find_job(templates, key)
        return None if job_id is None else JobRef(backend=NAME, job_id=str(job_id), key=key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        detail = await self._wait(job.job_id, wait)
        state = str(detail.get("status"))
        if state not in results.FINAL_STATES:
            return JobStatus(job=job, done=False, state=state)
        extra = _extra_vars(detail)
        if extra.get("patchgate_key") != job.key:
            raise AwxError(f"AWX job {job.job_id} does not carry the key {job.key!r}")
        listed = extra.get("patchgate_hosts") or str(detail.get("limit") or "").split(",")
        hosts = [str(h) for h in listed if str(h)]
        outcomes, _ = await self._outcomes(job.job_id, hosts, detail)
        return JobStatus(job=job, done=True, state=state, hosts=outcomes, detail=_detail(detail))

    async def cancel(self, job: JobRef) -> bool:
        """Ask AWX to cancel the job; False when it has already finished (AWX's 405)."""
        try:
            await self._client.post(f"jobs/{job.job_id}/cancel/", idempotent=True)
        except AwxRejected as exc:
            if exc.status == 405:
                return False
            raise
        return True

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        opts = _options(options)
        if opts.assess_job_template is None:
            raise AwxRejected("awx: no assess_job_template is configured for this plan")
        names = [h.name for h in hosts]
        if not names:
            return []
        bad = unsafe_host_names(names)
        if bad:
            raise AwxRejected("awx: host names not usable in a limit: " + ", ".join(bad))
        key = f"assess-{uuid.uuid4().hex}"
        extra_vars = {"patchgate_key": key, "patchgate_action": "assess", "patchgate_hosts": names}
        template = await self._template_id(opts.assess_job_template)
        job_id = str(await self._launch(template, key, names, extra_vars, opts))
        detail = await self._wait(job_id, opts.assess_timeout)
        if str(detail.get("status")) not in results.FINAL_STATES:
            await self.cancel(JobRef(backend=NAME, job_id=job_id, key=key))
            error = f"AWX assess job {job_id} did not finish within {opts.assess_timeout:g}s"
            return [HostAssessment(host=n, reachable=True, error=error) for n in names]
        outcomes, events = await self._outcomes(job_id, names, detail)
        return results.host_assessments(names, outcomes, events)

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        # Only ``inventory`` matters here: an inventory import names no job template.
        inventory = options.get("inventory")
        if isinstance(inventory, bool) or not isinstance(inventory, int) or inventory <= 0:
            raise AwxRejected(
                "awx.inventory: set the inventory id (a positive integer) to list the hosts "
                "AWX manages"
            )
        return await inventory_hosts(self._client, inventory)

    # --- helpers ----------------------------------------------------------------------------

    async def _template_id(self, ref: TemplateRef) -> int:
        if isinstance(ref, int):
            return ref
        if ref not in self._template_ids:
            found = [t async for t in self._client.pages("job_templates/", {"name": ref})]
            if len(found) != 1:
                raise AwxRejected(
                    f"awx: {len(found)} job templates are named {ref!r} (expected exactly one;"
                    " use its id)"
                )
            self._template_ids[ref] = int(found[0]["id"])
        return self._template_ids[ref]

    async def _launch_body(
        self, template: int, names: Sequence[str], extra_vars: Mapping[str, Any], opts: AwxOptions
    ) -> dict[str, Any]:
        """The launch request, after checking the template accepts it as it is meant."""
        info = await self._client.get(f"job_templates/{template}/launch/")
        missing = [field for field, ask in _PROMPTS.items() if not info.get(ask)]
        if missing:
            prompts = ", ".join(_PROMPTS[f] for f in missing)
            raise AwxRejected(
                f"awx: job template {template} must prompt on launch for {', '.join(missing)}"
                f" ({prompts} is false): AWX would ignore them and run on its whole inventory"
            )
        needed = set(info.get("variables_needed_to_start") or ()) - set(extra_vars)
        if needed or info.get("passwords_needed_to_start"):
            wants = sorted(needed) + list(info.get("passwords_needed_to_start") or ())
            raise AwxRejected(
                f"awx: job template {template} needs input PatchGate cannot give: "
                + ", ".join(wants)
            )
        body: dict[str, Any] = {"limit": ",".join(names), "extra_vars": dict(extra_vars)}
        if opts.inventory is not None:
            if info.get("ask_inventory_on_launch"):
                body["inventory"] = opts.inventory
            else:
                own = ((info.get("defaults") or {}).get("inventory") or {}).get("id")
                if own != opts.inventory:
                    raise AwxRejected(
                        f"awx: job template {template} runs on inventory {own}, not"
                        f" {opts.inventory}, and does not prompt for an inventory on launch"
                    )
        return body

    async def _launch(
        self,
        template: int,
        key: str,
        names: Sequence[str],
        extra_vars: Mapping[str, Any],
        opts: AwxOptions,
    ) -> int:
        body = await self._launch_body(template, names, extra_vars, opts)
        for attempt in range(1, self._launch_attempts + 1):
            try:
                _, data = await self._client.post(
                    f"job_templates/{template}/launch/", body, idempotent=False
                )
            except AwxUnavailable as exc:
                # The launch may have landed: look for the key before launching again. When
                # no answer came at all, AWX may still be committing it: let it settle.
                if exc.status is None and self._launch_settle > 0:
                    await self._sleep(self._launch_settle)
                try:
                    found = await self._find_job([template], key)
                except AwxError as lookup:
                    raise AwxLaunchUnknown(
                        f"awx: the launch for {key} may have started a job ({exc}) and AWX"
                        f" could not be searched for it ({lookup}); find it by its key later"
                    ) from exc
                if found is not None:
                    log.info("AWX launch answer for %s lost; found its job %s", key, found)
                    return found
                wait = exc.retry_after if exc.retry_after is not None else 2.0**attempt
                if attempt == self._launch_attempts or wait > self._max_launch_wait:
                    raise AwxUnavailable(
                        f"awx: the launch for {key} failed {attempt} time(s) ({exc}); no job"
                        " carries its key, so submitting again is safe",
                        status=exc.status,
                        retry_after=exc.retry_after,
                    ) from exc
                await self._sleep(wait)
                continue
            job_id = int(data.get("job") or data["id"])
            ignored = data.get("ignored_fields") or {}
            dropped = sorted(set(ignored) & {"limit", "extra_vars", "inventory"})
            if dropped:
                await self.cancel(JobRef(backend=NAME, job_id=str(job_id), key=key))
                raise AwxRejected(
                    f"awx: job template {template} ignored {', '.join(dropped)} on launch;"
                    f" job {job_id} was canceled"
                )
            return job_id
        raise AssertionError("unreachable")

    async def _find_job(self, templates: Sequence[int], key: str) -> int | None:
        params = {"job_template__in": ",".join(str(t) for t in templates), "order_by": "-id"}
        scanned = 0
        async for item in self._client.pages("jobs/", params):
            if "extra_vars" in item:
                extra = _extra_vars(item)
            else:  # newer AWX leaves extra_vars out of lists
                extra = _extra_vars(await self._client.get(f"jobs/{item['id']}/"))
            if extra.get("patchgate_key") == key:
                return int(item["id"])
            scanned += 1
            if scanned >= self._find_scan:
                break
        return None

    async def _wait(self, job_id: str, wait: float) -> dict[str, Any]:
        deadline = self._monotonic() + max(0.0, wait)
        while True:
            detail = await self._client.get(f"jobs/{job_id}/")
            if str(detail.get("status")) in results.FINAL_STATES:
                return detail
            left = deadline - self._monotonic()
            if left <= 0:
                return detail
            await self._sleep(min(self._poll, left))

    async def _outcomes(
        self, job_id: str, hosts: Sequence[str], detail: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, results.HostEvents]]:
        summaries = [s async for s in self._client.pages(f"jobs/{job_id}/job_host_summaries/")]
        events = [
            e
            async for e in self._client.pages(
                f"jobs/{job_id}/job_events/",
                {"event__in": "runner_on_failed,runner_on_unreachable", "order_by": "counter"},
            )
        ]
        events += [
            e
            async for e in self._client.pages(
                f"jobs/{job_id}/job_events/",
                {
                    "event": "runner_on_ok",
                    "task__icontains": results.REPORT_TASK_MARK,
                    "order_by": "counter",
                },
            )
        ]
        events.sort(key=lambda e: int(e.get("counter") or 0))
        seen = results.collect_events(events)
        outcomes = results.host_outcomes(
            hosts,
            summaries,
            seen,
            job_status=str(detail.get("status")),
            job_detail=_detail(detail),
        )
        return outcomes, seen


def _options(options: Mapping[str, Any]) -> AwxOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise AwxRejected(str(exc)) from exc


def _extra_vars(job: Mapping[str, Any]) -> dict[str, Any]:
    value = job.get("extra_vars")
    if isinstance(value, Mapping):
        return dict(value)
    try:
        return parse_variables(value, where=f"AWX job {job.get('id')}")
    except InventoryError:  # a job someone else launched with odd variables is not ours
        return {}


def _detail(job: Mapping[str, Any]) -> str:
    parts = [str(job.get("job_explanation") or "").strip()]
    parts.append(str(job.get("result_traceback") or "").strip()[-1000:])
    return "\n".join(p for p in parts if p)
