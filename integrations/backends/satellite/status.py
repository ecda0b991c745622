"""Satellite's own view of hosts after a job (the ``tool`` health check) and the halt
of a running job invocation.

Status: the hosts are found by name (``GET /api/v2/hosts``, ``search=name ^ (..)``; the
row's ``subscription_facet_attributes``: registered, ``last_checkin``), then each host's
global status is read (``GET /api/hosts/:id/status/global``: ``status`` 0 OK, 1
Warning, 2 Error, with ``status_label``; Foreman API v2, hosts#get_status). A host is
well when it is registered, checked in within ``stale_checkin_hours`` and its global
status is not Error. An answer of another shape, or an error of the API, is that
host's failed status with the reason.

Halt: ``POST /api/job_invocations/:id/cancel`` (foreman_remote_execution, job
invocations#cancel: 200 ``{"cancelled": true, "id": ..}``; 422 when the job cannot be
cancelled, e.g. it has finished). Idempotent: a 422 on an invocation whose task has
stopped is a job already over, left as it is. Satellite keeps no note with a cancel:
the reason is PatchGate's audit's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from integrations.backends.satellite import content
from integrations.backends.satellite.client import SatelliteClient
from integrations.backends.satellite.errors import SatelliteError, SatelliteRejected
from integrations.backends.satellite.options import SatelliteOptions, unsafe_host_names
from workflows.backends import DeviceStatus, JobRef
from workflows.ports import InventoryHost

log = logging.getLogger(__name__)

GLOBAL_LABELS = {0: "OK", 1: "Warning", 2: "Error"}
_ERROR = 2


async def host_status(
    client: SatelliteClient,
    hosts: Sequence[InventoryHost],
    opts: SatelliteOptions,
    now: dt.datetime,
) -> list[DeviceStatus]:
    names = [h.name for h in hosts]
    bad = set(unsafe_host_names(names))
    rows = await content.host_rows(client, [n for n in names if n not in bad], opts.organization_id)
    out: list[DeviceStatus] = []
    for name in names:
        row = rows.get(name)
        if row is None:
            why = "not a plain host name" if name in bad else "Satellite does not know this host"
            out.append(DeviceStatus(host=name, ok=False, state="unknown", detail=why))
            continue
        out.append(await _one(client, name, row, opts, now))
    return out


async def _one(
    client: SatelliteClient,
    name: str,
    row: Mapping[str, Any],
    opts: SatelliteOptions,
    now: dt.datetime,
) -> DeviceStatus:
    gap = content.coverage_gap(row, now=now, stale_hours=opts.stale_checkin_hours)
    if gap is not None:
        return DeviceStatus(host=name, ok=False, state="not checked in", detail=gap)
    try:
        data = await client.get(f"/api/hosts/{row['id']}/status/global")
    except SatelliteError as exc:
        return DeviceStatus(host=name, ok=False, state="error", detail=str(exc))
    code = data.get("status")
    if not isinstance(code, int) or isinstance(code, bool) or code not in GLOBAL_LABELS:
        return DeviceStatus(
            host=name,
            ok=False,
            state="unknown",
            detail=f"Satellite answered a global status of an unknown shape: {str(data)[:200]}",
        )
    label = str(data.get("status_label") or GLOBAL_LABELS[code])
    if code >= _ERROR:
        return DeviceStatus(
            host=name, ok=False, state=label, detail=f"Satellite's global status is {label}"
        )
    return DeviceStatus(host=name, ok=True, state=label)


async def cancel(client: SatelliteClient, job: JobRef, reason: str) -> None:
    """Cancel the job invocation (idempotent, see the module)."""
    try:
        data = await client.post(f"/api/job_invocations/{job.job_id}/cancel", {})
    except SatelliteRejected:
        detail = await client.get(f"/api/job_invocations/{job.job_id}")
        task = detail.get("task") or detail.get("dynflow_task")
        if isinstance(task, Mapping) and task.get("state") == "stopped":
            log.info("Satellite job invocation %s is over already; not cancelled", job.job_id)
            return
        raise
    if data.get("cancelled") is not True:
        raise SatelliteError(
            f"Satellite did not cancel job invocation {job.job_id}: {str(data)[:200]}"
        )
    log.info("Satellite job invocation %s (%s) cancelled: %s", job.job_id, job.key, reason)
