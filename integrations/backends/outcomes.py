"""Following a job whose hosts finish one by one: the loop the tool backends that read a
result per host (``automox``, ``tanium``) share."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from workflows.backends import HostOutcome, JobRef, JobStatus

Read = Callable[[], Awaitable[Mapping[str, HostOutcome | None]]]


async def follow_hosts(
    job: JobRef,
    read: Read,
    *,
    wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
    pending: str,
) -> JobStatus:
    """Read the hosts' outcomes (None: not final yet) every ``poll`` seconds for at most
    ``wait`` seconds; ``done`` once every host has one (``failed`` when any is not
    applied), else the tool's word ``pending`` for a job still running."""
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        outcomes = await read()
        if all(o is not None for o in outcomes.values()):
            hosts = {h: o for h, o in outcomes.items() if o is not None}
            bad = any(o.status != "applied" for o in hosts.values())
            state = "failed" if bad else "successful"
            return JobStatus(job=job, done=True, state=state, hosts=hosts)
        left = deadline - time.monotonic()
        if left <= 0:
            return JobStatus(job=job, done=False, state=pending)
        await sleep(min(poll, left))
