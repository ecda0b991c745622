"""The Tanium backend: a batch is one Tanium Patch deployment per endpoint.

What Tanium documents publicly, and so what this backend does (docs/tanium.md):

- inventory and status: the API Gateway's ``endpoints`` query (paged by cursor); an
  endpoint not seen for ``stale_after`` seconds is a coverage gap and not ``ok``;
- assessment: the "Patch - Patch List Applicability" sensor read live through the
  Gateway (rows ``Not Installed`` are the pending updates);
- apply: for each endpoint, a question group naming it (``POST /api/v2/groups``), its
  platform's "All <platform>" limiting group, the "Patch Content Set", then ``POST
  /plugin/products/patch/v2/deployments`` with the host's pinned Tanium UIDs, exactly as
  Tanium's own published Sentinel playbook creates a deployment for one endpoint;
- follow: the "Patch - Deployment Results" sensor, filtered on the deployments' ids.

Not documented publicly, and therefore not done (declared in :func:`.options.
capabilities`, refused with a located error): uninstalling (rollback), a reboot on its
own, stopping or pausing a deployment (halt), reading a deployment by id or listing
deployments. Idempotency across a crash is a local :class:`.journal.Journal`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from integrations.backends.keyfiles import follow_hosts
from integrations.backends.tanium import gateway as gw
from integrations.backends.tanium import mapping as mp
from integrations.backends.tanium.client import TaniumClient, by_name
from integrations.backends.tanium.errors import (
    TaniumError,
    TaniumQueryError,
    TaniumRejected,
    TaniumUnavailable,
)
from integrations.backends.tanium.journal import Entry, HostDeployment, Journal
from integrations.backends.tanium.options import (
    TaniumOptions,
    capabilities,
    check_options,
    parse_options,
)
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

NAME = mp.NAME
DEPLOYMENTS = "plugin/products/patch/v2/deployments"
PATCH_CONTENT_SET = "Patch Content Set"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_SAFE_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:{}-]{0,200}")


class TaniumBackend:
    """Implements :class:`workflows.backends.BatchBackend` and ``StatusBackend``."""

    name = NAME

    def __init__(
        self,
        client: TaniumClient,
        journal_dir: Path,
        *,
        poll_interval: float = 60.0,
        page_size: int = 100,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._journal = Journal(journal_dir)
        self._poll = poll_interval
        self._page = max(1, page_size)
        self._sleep = sleep
        self._clock = clock
        self._final: dict[str, dict[str, HostOutcome]] = {}  # key -> host -> final outcome

    async def close(self) -> None:
        await self._client.close()

    def capabilities(self, options: Mapping[str, Any]) -> Capabilities:
        return capabilities(options)

    def check_options(self, options: Mapping[str, Any]) -> Sequence[str]:
        return check_options(options)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    # --- jobs -------------------------------------------------------------------------------

    async def submit(self, work: BatchWork) -> JobRef:
        opts = _options(work.options)
        if work.action != "apply":
            raise TaniumRejected(
                f"tanium: cannot {work.action} {work.key}: Tanium's public API documents"
                " install deployments only (no uninstall, no reboot on its own; docs/tanium.md)"
            )
        ref = JobRef(backend=NAME, job_id=work.key, key=work.key)
        entry = self._journal.load(work.key)
        if entry is None:
            entry = await self._plan(work)
            self._journal.save(entry)  # the intent, before anything is created
        content_set: Any = None
        for host, hd in entry.hosts.items():
            if hd.sent:  # created, or sent with its answer lost: never sent again
                continue
            if content_set is None:
                content_set = await self._content_set()
            await self._deploy(work.key, entry, host, hd, content_set, opts)
        log.info("Tanium deployments for %s: %d endpoints", work.key, len(entry.hosts))
        return ref

    async def find(self, key: str, options: Mapping[str, Any]) -> JobRef | None:
        return None if self._journal.load(key) is None else JobRef(NAME, key, key)

    async def follow(self, job: JobRef, options: Mapping[str, Any], *, wait: float) -> JobStatus:
        opts = _options(options)
        entry = self._journal.load(job.key)
        if entry is None:
            raise TaniumError(f"tanium: no journal entry for {job.key}: it was never submitted")
        return await follow_hosts(
            job,
            lambda: self._outcomes(entry, opts),
            wait=wait,
            poll=self._poll,
            sleep=self._sleep,
            pending="deploying",
        )

    # --- inventory, assessment, status ------------------------------------------------------

    async def hosts(self, options: Mapping[str, Any]) -> Sequence[InventoryHost]:
        opts, now = _options(options), self._now()
        eps = [
            gw.endpoint(n) async for n in gw.nodes(self._client, gw.ENDPOINTS, {}, first=self._page)
        ]
        counts: dict[str, int] = {}
        for ep in eps:
            counts[ep.name] = counts.get(ep.name, 0) + 1
        out = []
        for ep in eps:
            host = mp.inventory_host(ep, now, opts.stale_after)
            if counts[ep.name] > 1:  # ambiguous: never targeted by name
                why = f"{counts[ep.name]} Tanium endpoints are named {ep.name}"
                host = InventoryHost(
                    host.name,
                    groups=host.groups,
                    tags=host.tags,
                    vars={**host.vars, "patchgate_unreachable": why},
                )
            out.append(host)
        return out

    async def assess(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[HostAssessment]:
        opts, names = _options(options), [h.name for h in hosts]
        found: dict[str, HostAssessment] = {}
        completion = gw.Completion()
        variables = {"filter": gw.names_filter(names), "source": gw.live(int(opts.stable_wait))}
        async for node in gw.nodes(
            self._client, gw.PATCHES, variables, first=self._page, completion=completion
        ):
            try:
                ep = gw.endpoint(node)
                if ep.name in names:
                    found[ep.name] = mp.assessment(ep, gw.sensor_rows(node, gw.APPLICABILITY))
            except TaniumError as exc:  # a changed shape: this host's error, not the batch's
                name = str(node.get("name"))
                found[name] = HostAssessment(name, True, error=str(exc))
        missing = [n for n in names if n not in found]
        if missing:  # not a Tanium endpoint, or one that did not answer live: say which
            known = await self._endpoints(missing, strict=False)
            now = self._now()
            unfinished = "" if completion.complete else " (the live question did not finish)"
            for name in missing:
                seen = known.get(name)
                if seen is None:
                    found[name] = HostAssessment(name, False, error="not a Tanium endpoint")
                    continue
                why = mp.stale_why(seen, now, opts.stale_after) or (
                    f"the Tanium client on {name} gave no live answer to the Patch question"
                    f" (offline?){unfinished}"
                )
                found[name] = HostAssessment(name, False, error=why)
        return [found[n] for n in names]

    async def status(
        self, hosts: Sequence[InventoryHost], options: Mapping[str, Any]
    ) -> Sequence[DeviceStatus]:
        opts, now = _options(options), self._now()
        eps = await self._endpoints([h.name for h in hosts], strict=False)
        out = []
        for host in hosts:
            ep = eps.get(host.name)
            if ep is None:
                out.append(DeviceStatus(host.name, False, "unknown", "not a Tanium endpoint"))
                continue
            why = mp.stale_why(ep, now, opts.stale_after)
            seen = "never" if ep.last_seen is None else ep.last_seen.isoformat()
            out.append(DeviceStatus(host.name, why is None, f"last seen {seen}", why or ""))
        return out

    # --- helpers ----------------------------------------------------------------------------

    async def _plan(self, work: BatchWork) -> Entry:
        names = [h.name for h in work.hosts]
        if not names:
            raise TaniumRejected("tanium: a batch without hosts cannot be submitted")
        unsafe = [n for n in names if not _SAFE_NAME.fullmatch(n)]
        if unsafe:
            raise TaniumRejected(f"tanium: host names unusable in a Tanium question: {unsafe}")
        eps = await self._endpoints(names, strict=True)
        entry = Entry(work.key, self._clock())
        for name in names:
            pinned = dict(work.versions.get(name) or {})
            bad = [u for u, t in pinned.items() if not _SAFE_UID.fullmatch(u) or not t]
            if not pinned or bad:
                raise TaniumRejected(
                    f"tanium: host {name}: "
                    + (f"unusable Tanium UIDs or titles {bad}" if bad else "no pinned patches")
                )
            ep = eps[name]
            patches = {u: str(t) for u, t in pinned.items()}
            entry.hosts[name] = HostDeployment(ep.id, ep.platform, patches)
        return entry

    async def _deploy(
        self,
        key: str,
        entry: Entry,
        host: str,
        hd: HostDeployment,
        content_set: Any,
        opts: TaniumOptions,
    ) -> None:
        limiting = _data_id(await self._client.get(by_name("api/v2/groups", f"All {hd.platform}")))
        target = _data_id(
            await self._client.post("api/v2/groups", {"text": f'Computer Name equals "{host}"'})
        )
        body = mp.deployment_body(
            name=f"{key} {host}",
            description=f"PatchGate {key}: the pinned patches for {host}",
            content_set_id=content_set,
            platform=hd.platform,
            uids=sorted(hd.patches),
            limiting_group_id=limiting,
            target_group_id=target,
            start=self._now() - dt.timedelta(minutes=5),
            opts=opts,
        )
        hd.sent = True
        self._journal.save(entry)  # sent: from here on never sent again
        try:
            answer = await self._client.post(DEPLOYMENTS, body)
        except TaniumUnavailable as exc:
            if exc.status == 429:  # refused, so not created: a later submit may send it
                hd.sent = False
                self._journal.save(entry)
                raise
            log.warning("Tanium: the deployment for %s was sent, its answer lost: %s", host, exc)
            return
        except TaniumError:
            hd.sent = False  # Tanium refused it: nothing was created
            self._journal.save(entry)
            raise
        deployment = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(deployment, str | int) or isinstance(deployment, bool):
            log.warning("Tanium: the deployment for %s answered no id: %r", host, answer)
            return
        hd.deployment_id = str(deployment)
        self._journal.save(entry)

    async def _content_set(self) -> Any:
        return _data_id(await self._client.get(by_name("api/v2/content_sets", PATCH_CONTENT_SET)))

    async def _endpoints(self, names: Sequence[str], *, strict: bool) -> dict[str, gw.Endpoint]:
        wanted, found, twice = set(names), {}, set()
        variables = {"filter": gw.names_filter(sorted(wanted))}
        async for node in gw.nodes(self._client, gw.ENDPOINTS, variables, first=self._page):
            ep = gw.endpoint(node)
            if ep.name in wanted:
                if ep.name in found:
                    twice.add(ep.name)
                found[ep.name] = ep
        if twice:
            raise TaniumRejected("tanium: several endpoints are named " + ", ".join(sorted(twice)))
        missing = sorted(wanted - set(found))
        if missing and strict:
            raise TaniumRejected("tanium: no Tanium endpoint is named " + ", ".join(missing))
        return found

    async def _outcomes(self, entry: Entry, opts: TaniumOptions) -> dict[str, HostOutcome | None]:
        final = self._final.setdefault(entry.key, {})
        out: dict[str, HostOutcome | None] = {h: final.get(h) for h in entry.hosts}
        pending = {h: d for h, d in entry.hosts.items() if h not in final}
        for host, hd in pending.items():
            if hd.deployment_id is None:
                out[host] = HostOutcome(
                    host=host, status="failed", output=_unconfirmed(entry.key, host, hd)
                )
        ids = {hd.deployment_id: h for h, hd in pending.items() if hd.deployment_id is not None}
        if not ids:
            final.update({h: o for h, o in out.items() if o is not None})
            return out
        late = self._clock() - entry.submitted_at >= opts.result_timeout
        rows: dict[str, list[dict[str, str]]] = {}
        variables = {
            "filter": gw.deployments_filter(sorted(ids)),
            "source": gw.live(int(opts.stable_wait)),
        }
        error: TaniumError | None = None
        try:
            async for node in gw.nodes(self._client, gw.RESULTS, variables, first=self._page):
                got = gw.sensor_rows(node, gw.DEPLOYMENT_RESULTS)
                gw.require(got, gw.DEPLOYMENT_RESULTS, "Deployment ID", "Patch Title", "Result")
                rows.setdefault(str(node.get("name")), []).extend(got)
        except (TaniumUnavailable, TaniumQueryError) as exc:
            # Tanium is busy or down, or the Gateway answered errors (an expired cursor, a
            # question that failed): asked again at the next poll, until result_timeout
            if not late:
                log.info("Tanium: deployment results not read this time (%s)", exc)
                return out
            error = exc
        except TaniumError as exc:  # a changed shape: the hosts' error at once
            error = exc
        if error is not None:
            for host in ids.values():
                final[host] = out[host] = HostOutcome(
                    host=host, status="failed", output=f"deployment results: {error}"
                )
            return out
        for deployment, host in ids.items():
            hd = entry.hosts[host]
            outcome = mp.judge(host, deployment, hd.patches, rows.get(host, []))
            if outcome is None and late:
                outcome = HostOutcome(
                    host=host,
                    status="unreachable",
                    output=f"Tanium Patch deployment {deployment} reported no final result for"
                    f" {host} within {opts.result_timeout:g}s (the endpoint may be offline)",
                )
            out[host] = outcome
        final.update({h: o for h, o in out.items() if o is not None})
        return out


def _unconfirmed(key: str, host: str, hd: HostDeployment) -> str:
    if not hd.sent:
        return f"the Tanium deployment for {host} was never created"
    return (
        f"the Tanium deployment for {host} was sent but its answer was lost (or had no id);"
        f" PatchGate does not create it again, and Tanium's public API offers no way to look"
        f" it up: check Patch > Deployments for a deployment named '{key} {host}'"
    )


def _data_id(answer: Any) -> Any:
    data = answer.get("data") if isinstance(answer, dict) else None
    ident = data.get("id") if isinstance(data, dict) else None
    if not isinstance(ident, int | str) or isinstance(ident, bool):
        raise TaniumError(f"Tanium answered no data.id: {str(answer)[:200]}")
    return ident


def _options(options: Mapping[str, Any]) -> TaniumOptions:
    try:
        return parse_options(options)
    except ValueError as exc:
        raise TaniumRejected(str(exc)) from exc
