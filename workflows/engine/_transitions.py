"""The only writers of rollout, ring and host state.

Each function applies the pure transition of :mod:`workflows.states` (an illegal step
raises), stamps the times that go with it, and writes the ``*.state`` audit event in
the caller's transaction. Nothing else in the engine assigns ``.state`` of a
:class:`Rollout`, :class:`Ring` or :class:`HostRun`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import notify as notifications
from workflows import outbox, tickets
from workflows.engine._context import MOVED_RUNS, StepContext
from workflows.models import HostLease, HostRun, Ring, Rollout
from workflows.states import (
    HOST_FAILURES,
    HOST_SETTLED,
    RING_SETTLED,
    ROLLOUT_SETTLED_VALUES,
    HostEvent,
    HostState,
    RingEvent,
    RingState,
    RolloutEvent,
    RolloutState,
    host_transition,
    ring_transition,
    rollout_transition,
)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as audit bodies write times


async def set_rollout(
    ctx: StepContext,
    session: AsyncSession,
    rollout: Rollout,
    event: RolloutEvent,
    *,
    reason: str | None = None,
) -> None:
    """Move the rollout on; settling it frees its leases and the parent message follows."""
    before = rollout.state
    rollout.state = rollout_transition(RolloutState(before), event).value
    rollout.epoch = ctx.epoch or 0
    if reason:
        rollout.reason = reason
    if rollout.state in ROLLOUT_SETTLED_VALUES:
        rollout.finished_at = ctx.now()
        await session.execute(sa.delete(HostLease).where(HostLease.rollout_id == rollout.id))
    await ctx.event(
        session,
        "rollout.state",
        rollout.id,
        **{"from": before, "to": rollout.state, "event": event.value, "reason": reason},
    )
    if event != RolloutEvent.ASSESS:  # the parent message is posted with that one
        await outbox.enqueue(
            session,
            **notifications.parent_update(
                rollout,
                notifications.texts.parent_text(rollout),
                now=ctx.now(),
            ),
        )


async def set_ring(
    ctx: StepContext,
    session: AsyncSession,
    ring: Ring,
    event: RingEvent,
    *,
    reason: str | None = None,
) -> None:
    """Move the ring on, stamping when it started and ended."""
    before = ring.state
    ring.state = ring_transition(RingState(before), event).value
    if reason:
        ring.reason = reason
    if event == RingEvent.START:
        ring.started_at = ctx.now()
    if ring.state in RING_SETTLED:
        ring.finished_at = ctx.now()
    await ctx.event(
        session,
        "ring.state",
        ring.rollout_id,
        ring=ring.name,
        **{"from": before, "to": ring.state, "event": event.value, "reason": reason},
    )


async def set_host(
    ctx: StepContext,
    session: AsyncSession,
    run: HostRun,
    event: HostEvent,
    *,
    error: str | None = None,
) -> None:
    """Move the host run on; a failure counts against the budget and tickets follow."""
    before = run.state
    run.state = host_transition(HostState(before), event).value
    if run.state in HOST_FAILURES:
        run.failure = True
    if error:
        run.error = error
    settled: dict[str, Any] = {}
    if run.state in HOST_SETTLED:
        run.finished_at = ctx.now()
        settled = run_facts(run)  # what host_runs.csv shows, for `report verify`
    await ctx.event(
        session,
        "host.state",
        run.rollout_id,
        host=run.host_name,
        **{"from": before, "to": run.state, "event": event.value, "error": error},
        **settled,
    )
    await tickets.on_host_state(session, run=run, now=ctx.now())
    # Once this transaction commits, the host's next step goes on from this row.
    session.info.setdefault(MOVED_RUNS, {})[run.id] = run


def run_facts(run: HostRun) -> dict[str, Any]:
    """A settled run's facts as its ``host.state`` event carries them (issue 15)."""

    def when(value: dt.datetime | None) -> str | None:
        return None if value is None else value.astimezone(dt.UTC).strftime(TIME_FORMAT)

    return {
        "platform": run.platform,
        "batch": run.batch,
        "started": when(run.started_at),
        "finished": when(run.finished_at),
        "before_versions": run.before_versions,
        "after_versions": run.after_versions,
        "exit_code": run.exit_code,
        "left_over": run.left_over,
    }
