"""How a deployment's devices are judged, once per poll (``IntuneBackend.follow``).

Per device, in order: it runs the revision's build or a later one -> ``applied`` (the
device's own state decides, as for the other tools); the updatable asset reports
``errors`` (not Entra joined, a bad device id) -> ``failed``; the update ring's
``deviceUpdateStates`` says ``failed`` -> ``failed``; the deployment was paused by
request (``halt``) -> ``skipped`` (it was not offered any more), paused by its
monitoring rule, faulted or archived -> ``failed``; past ``install_timeout`` ->
``failed``; otherwise still pending. A result is kept once read (``final``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from integrations.backends.intune import graph as g
from integrations.backends.intune.client import GraphClient
from integrations.backends.intune.errors import IntuneError, IntuneUnavailable
from integrations.backends.intune.journal import Entry, Rollout, Target
from integrations.backends.intune.options import IntuneOptions
from workflows.backends import HostOutcome

log = logging.getLogger(__name__)

WU = "beta/admin/windows/updates"
DEVICES = "v1.0/deviceManagement/managedDevices"
Ring = Callable[[IntuneOptions], Awaitable[dict[str, tuple[str, str]]]]


async def judge(
    client: GraphClient,
    entry: Entry,
    opts: IntuneOptions,
    final: MutableMapping[str, HostOutcome],
    now: float,
    ring_of: Ring,
) -> tuple[dict[str, str], dict[str, HostOutcome | None]]:
    """(deployment id -> its effective state, host -> outcome or None while pending)."""
    states: dict[str, str] = {}
    out: dict[str, HostOutcome | None] = {}
    ring: dict[str, tuple[str, str]] | None = None
    for dep in entry.deployments:
        pending = [h for h in dep.hosts if h not in final]
        state: tuple[str, str, tuple[str, ...]] | None = None
        if dep.deployment_id is not None:
            try:
                state = g.state(await client.get(f"{WU}/deployments/{dep.deployment_id}"))
                states[dep.deployment_id] = state[0]
            except IntuneUnavailable as exc:
                log.info("Intune: deployment %s not read this time (%s)", dep.deployment_id, exc)
                pending = []
            except IntuneError as exc:  # gone or a changed shape: its devices' error
                for host in pending:
                    final[host] = HostOutcome(host, "failed", output=str(exc))
                pending = []
        if pending and dep.refused is not None:
            for host in pending:
                final[host] = HostOutcome(
                    host,
                    "failed",
                    failed_task="deployment",
                    output=f"Graph refused to create its deployment: {dep.refused}",
                )
            pending = []
        if pending and dep.deployment_id is None and entry.halted:
            for host in pending:  # halted before its deployment existed: never offered
                final[host] = HostOutcome(
                    host, "skipped", output="halted before its deployment was created"
                )
            pending = []
        if pending and ring is None:
            try:
                ring = await ring_of(opts)
            except IntuneUnavailable:
                pending = []
        for host in dep.hosts:
            if host in final:
                out[host] = final[host]
            elif host not in pending:
                out[host] = None
            else:
                try:
                    outcome = await _one(client, entry, dep, host, state, ring or {}, opts, now)
                except IntuneUnavailable as exc:
                    log.info("Intune: %s not followed this time (%s)", host, exc)
                    outcome = None
                except IntuneError as exc:
                    outcome = HostOutcome(host, "failed", output=str(exc))
                out[host] = outcome
                if outcome is not None:
                    final[host] = outcome
    return states, out


async def _one(
    client: GraphClient,
    entry: Entry,
    dep: Rollout,
    host: str,
    state: tuple[str, str, tuple[str, ...]] | None,
    ring: dict[str, tuple[str, str]],
    opts: IntuneOptions,
    now: float,
) -> HostOutcome | None:
    target = dep.hosts[host]
    where = f"deployment {dep.deployment_id or '(not created)'}"
    dev = g.device(await client.get(f"{DEVICES}/{target.device_id}"))
    revision = g.Revision(target.build, target.kb, *(g.parse_build(target.build) or (0, 0)))
    if g.has(dev.build, revision):
        return HostOutcome(
            host,
            "applied",
            after={target.kb: target.build},
            output=f"{where}: {host} runs build {dev.build} ({target.kb})",
        )
    after: dict[str, str | None] = {target.kb: None}

    def failed(why: str, task: str) -> HostOutcome:
        return HostOutcome(
            host,
            "failed",
            after=after,
            failed_task=task,
            output=f"{where}: {host} at build {dev.build}, not {target.build}: {why}",
        )

    errors = await _asset_errors(client, target)
    if errors:
        return failed(f"the updatable asset {target.aad_id} has errors: {errors}", "enrollment")
    word, version = ring.get(target.device_id, ("", ""))
    if word == "failed":
        return failed(f"Windows Update reports failed (quality update {version or '?'})", "install")
    if state is not None:
        effective, _requested, reasons = state
        if effective == "paused" and "pausedByMonitoring" not in reasons:
            return HostOutcome(
                host,
                "skipped",
                after=after,
                output=f"{where} paused by request before {host} had {target.kb}",
            )
        if effective in ("paused", "faulted", "archived"):
            return failed(
                f"the deployment is {effective} ({', '.join(reasons) or 'no reason'})", "deployment"
            )
    if now - entry.submitted_at > opts.install_timeout:
        return failed(
            f"not installed after {opts.install_timeout:g}s ({word or 'no ring state'})", "install"
        )
    return None


async def _asset_errors(client: GraphClient, target: Target) -> str:
    try:
        asset = await client.get(f"{WU}/updatableAssets/{target.aad_id}")
    except IntuneError as exc:
        if exc.status == 404:  # not enrolled yet: no errors to report
            return ""
        raise
    errors: Any = asset.get("errors") if isinstance(asset, dict) else None
    return ", ".join(str(e.get("reason")) for e in errors or () if isinstance(e, dict))
