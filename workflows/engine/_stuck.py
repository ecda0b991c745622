"""A step that keeps failing: counted per host run and per rollout (in the leader's
memory; a new leader counts afresh). Below ``EngineDeps.step_retry_limit`` tries the
error is re-raised and the step runs again at the next tick; at the limit the engine
gives up: the host (or the ring in progress and the rollout) fails with the error as
its reason, on-call is alerted and a ticket is filed, through the existing paths.
The rollout's side is :func:`workflows.engine._endings.give_up_rollout`.
"""

from __future__ import annotations

import logging

from workflows import notify as notifications
from workflows import outbox, tickets
from workflows.engine._context import StepContext
from workflows.engine._transitions import set_host
from workflows.models import HostRun, Ring, Rollout
from workflows.notify import texts
from workflows.states import HOST_TRANSITIONS, HostEvent, HostState

log = logging.getLogger("patchgate.engine")


class HostStepFailed(Exception):
    """A host's step failed below the retry limit (already counted for that host)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"a step failed on {host}; retried at the next tick")


def count(ctx: StepContext, key: str) -> int:
    tries = ctx.step_failures[key] = ctx.step_failures.get(key, 0) + 1
    return tries


async def give_up_host(ctx: StepContext, run_id: int, error: BaseException) -> bool:
    """Count a failed step of this host; at the limit fail the host and alert on-call."""
    key = f"host:{run_id}"
    tries = count(ctx, key)
    log.warning(
        "host run %s: step failed (%s/%s): %r", run_id, tries, ctx.deps.step_retry_limit, error
    )
    if tries < ctx.deps.step_retry_limit:
        return False
    async with ctx.tx("host.gave_up") as session:
        run = await session.get(HostRun, run_id)
        assert run is not None
        rollout = await session.get(Rollout, run.rollout_id)
        ring = await session.get(Ring, run.ring_id)
        assert rollout is not None and ring is not None
        why = texts.gave_up_text(f"host {run.host_name}", tries, error)
        await ctx.event(
            session, "host.gave_up", rollout.id, host=run.host_name, tries=tries, error=why
        )
        if HostEvent.STUCK in HOST_TRANSITIONS.get(HostState(run.state), {}):
            await set_host(ctx, session, run, HostEvent.STUCK, error=why)
        await outbox.enqueue(
            session,
            **notifications.rollback_alert(
                rollout,
                ring,
                f"Rollout #{rollout.id} of plan {rollout.plan_name}: {why}",
                now=ctx.now(),
                hosts=[run.host_name],
                tickets=await tickets.ring_tickets(session, ring_id=ring.id),
                key=f"rollout:{rollout.id}:alert:run:{run.id}:gave-up",
            ),
        )
    ctx.step_failures.pop(key, None)
    return True
