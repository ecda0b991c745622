"""The engine's loop: each tick applies queued requests, runs the schedule's due work,
expires gates, then advances every active rollout by one step (at most one batch),
concurrently across rollouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import sqlalchemy as sa

from workflows import exceptions, gates, queries, tickets
from workflows import schedule as schedules
from workflows.db import read_only
from workflows.engine._context import EngineDeps, StepContext, StepHook
from workflows.engine._endings import give_up_rollout, window_closed, window_opened
from workflows.engine._laying import begin
from workflows.engine._pin import assess
from workflows.engine._rings import drive
from workflows.errors import StaleLeader
from workflows.models import Request, RequestKind, RequestState, Rollout
from workflows.notify import NoteAbout, texts
from workflows.plans import PatchPlan
from workflows.states import ROLLOUT_ACTIVE_VALUES, RolloutState

log = logging.getLogger("patchgate.engine")


class Engine:
    def __init__(
        self,
        deps: EngineDeps,
        *,
        epoch: int | None = None,
        hook: StepHook | None = None,
        owner: str = "engine",
    ) -> None:
        self.deps = deps
        self.db = deps.db
        self.epoch = epoch
        self.owner = owner
        self.ctx = StepContext(deps, epoch=epoch, hook=hook or (lambda _step: None))
        self._wake = asyncio.Event()  # set by wake(): cuts run()'s idle wait short
        self.last_tick_at: float | None = None  # Unix time (real, not the Clock port's)

    async def tick(self) -> bool:
        progressed = await self._apply_requests()
        if self.deps.schedule is not None:
            progressed = await self.deps.schedule.check(self.ctx.tx, self.ctx.now()) or progressed
        progressed = await self._expire_gates() or progressed
        async with read_only(self.db) as session:
            ids = await queries.active_rollout_ids(session)
        if ids:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._advance_isolated(rid)) for rid in ids]
            progressed = any(t.result() for t in tasks) or progressed
        self.last_tick_at = time.time()  # /metrics: the last tick that finished without error
        return progressed

    async def run_until_idle(self, *, max_ticks: int = 10_000) -> int:
        """Tick until nothing moves (tests and the CLI's foreground mode)."""
        for count in range(1, max_ticks + 1):
            if not await self.tick():
                return count
        raise RuntimeError(f"engine still busy after {max_ticks} ticks")

    def wake(self) -> None:
        """Tick now instead of at the end of the idle wait (the scheduler's date jobs call
        this at due times; call it on the engine's event loop)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, interval: float = 2.0) -> None:
        """Tick until ``stop`` is set; a tick that made progress is followed at once, an
        idle one by a wait of ``interval`` seconds that :meth:`wake` cuts short."""
        while not stop.is_set():
            self._wake.clear()
            try:
                progressed = await self.tick()
            except StaleLeader:
                raise
            except Exception:
                ref = uuid.uuid4().hex[:8]
                log.exception("engine tick failed (ref %s); retrying", ref)
                progressed = False
            if progressed:
                continue
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    # --- requests and gates -----------------------------------------------------------------

    async def _apply_requests(self) -> bool:
        """Apply the faces' pause, resume and abort requests, each in its own transaction."""
        ctx = self.ctx
        async with read_only(self.db) as session:
            pending = list(
                await session.scalars(
                    sa.select(Request.id)
                    .where(
                        Request.state == RequestState.PENDING.value,
                        Request.kind != RequestKind.RELOAD.value,  # the schedule's
                    )
                    .order_by(Request.id)
                )
            )
        for request_id in pending:
            async with ctx.tx("request.applied") as session:
                request = await session.get(Request, request_id)
                if request is None or request.state != RequestState.PENDING.value:
                    continue
                rollout = (
                    await session.get(Rollout, request.rollout_id) if request.rollout_id else None
                )
                request.processed_at = ctx.now()
                if rollout is None or rollout.state not in ROLLOUT_ACTIVE_VALUES:
                    request.state = RequestState.REFUSED.value
                    request.result = texts.REQUEST_NOT_ACTIVE
                    continue
                who = request.requested_by
                reason = request.payload.get("reason")
                if request.kind == RequestKind.PAUSE.value:
                    rollout.hold_reason = reason or texts.paused_reason(who)
                    rollout.hold_by, rollout.held_at = who, ctx.now()
                    text = texts.paused_text(who)
                elif request.kind == RequestKind.RESUME.value:
                    rollout.hold_reason = rollout.hold_by = rollout.held_at = None
                    text = texts.resumed_text(who)
                elif request.kind == RequestKind.ABORT.value:
                    rollout.abort_requested_by, rollout.abort_reason = who, reason
                    text = texts.abort_requested_text(who)
                else:  # pragma: no cover - the CHECK constraint allows nothing else
                    request.state = RequestState.REFUSED.value
                    continue
                request.state = RequestState.DONE.value
                request.result = text
                await ctx.event(
                    session,
                    f"rollout.{request.kind}",
                    rollout.id,
                    by=who,
                    reason=reason,
                    request_id=request.id,
                )
                await ctx.note(
                    session,
                    rollout,
                    f"request:{request.id}",
                    text,
                    NoteAbout(f"rollout.{request.kind}"),
                )
        return bool(pending)

    async def _expire_gates(self) -> bool:
        async with self.ctx.tx("gates.expired") as session:
            touched = await gates.expire_due(session, now=self.ctx.now())
            lapsed = await exceptions.expire_due(session, now=self.ctx.now())
            synced = await tickets.sync(session, now=self.ctx.now())
        return bool(touched) or bool(lapsed) or synced

    # --- one rollout, one step ----------------------------------------------------------------

    async def _advance_isolated(self, rollout_id: int) -> bool:
        """One rollout's step; an unexpected error is logged with a reference and does
        not cancel the other rollouts' work (the step is retried at the next tick)."""
        try:
            return await self._advance(rollout_id)
        except StaleLeader:
            raise
        except Exception as exc:
            ref = uuid.uuid4().hex[:8]
            log.exception("rollout %s: step failed (ref %s); retrying next tick", rollout_id, ref)
            return await give_up_rollout(self.ctx, rollout_id, exc)

    async def _advance(self, rollout_id: int) -> bool:
        moved = await self._step(rollout_id)
        self.ctx.step_failures.pop(f"rollout:{rollout_id}", None)  # tries in a row only
        return moved

    async def _step(self, rollout_id: int) -> bool:
        ctx = self.ctx
        async with read_only(self.db) as session:
            rollout = await session.get(Rollout, rollout_id)
            # A freeze holds every rollout at the tick's start; one started since (or
            # unheld) is held here, before any of its work (layout, parent message, pin).
            frozen = (
                self.deps.schedule is not None
                and rollout is not None
                and rollout.hold_reason is None
                and await schedules.active_freeze(session, now=ctx.now()) is not None
            )
        if rollout is None or rollout.state not in ROLLOUT_ACTIVE_VALUES:
            return False
        if frozen:
            return await schedules.hold_for_freeze(ctx.tx, rollout_id=rollout_id, now=ctx.now())
        plan = PatchPlan.model_validate(rollout.plan_snapshot)
        state = RolloutState(rollout.state)
        if state in (RolloutState.SCHEDULED, RolloutState.WAITING_WINDOW):
            if rollout.hold_reason:
                return False
            if not schedules.window_open(rollout, plan, ctx.now()):
                if state == RolloutState.SCHEDULED:
                    return await window_closed(ctx, rollout_id, plan)
                return False
            if state == RolloutState.WAITING_WINDOW and rollout.started_at is not None:
                return await window_opened(ctx, rollout_id, plan)
            return await begin(ctx, rollout_id, plan)
        if state == RolloutState.ASSESSING:
            return await assess(ctx, rollout_id, plan)
        if state in (RolloutState.RUNNING, RolloutState.AWAITING_APPROVAL):
            return await drive(ctx, rollout_id, plan)
        return False  # waiting_window: the scheduler's business
