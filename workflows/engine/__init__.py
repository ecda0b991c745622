"""The rollout engine: drives every non-terminal rollout through the ports.

Durability rule: every side effect on a host is preceded by a persisted intent and
followed by a persisted result, each in its own transaction with its audit events and
outbox rows. After a crash a new engine resumes from the database alone: a host left in
``applying`` is re-read through ``Executor.apply_status`` (the detached command's result
on the host) before anything runs again, so no host is patched twice and none skipped.

One call to :meth:`Engine.tick` applies queued requests, expires gates, then advances
each active rollout by one step (at most one batch), concurrently across rollouts.
Only the leader runs an engine; every write checks the leader epoch it was given.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import assessment, audit, exceptions, gates, outbox, reports, tickets
from workflows import notify as notifications
from workflows import schedule as schedules
from workflows.assessment import describe, patchset_hash, pin, select_packages
from workflows.db import Database, read_only, unit_of_work
from workflows.engine.layout import layout_rollout
from workflows.errors import Conflict, ExecutorError, HostUnreachable, StaleLeader
from workflows.models import (
    Approval,
    Decision,
    Gate,
    GateKind,
    Host,
    HostLease,
    HostRun,
    LeaderState,
    Request,
    RequestKind,
    RequestState,
    Ring,
    Rollout,
)
from workflows.notify import rollout_note, rollout_parent
from workflows.plans import PatchPlan
from workflows.ports import (
    ApplyResult,
    Clock,
    Executor,
    HealthChecker,
    HostFacts,
    Inventory,
    InventoryHost,
)
from workflows.states import (
    HOST_FAILURES,
    ROLLOUT_TERMINAL,
    GateEvent,
    GateState,
    HostEvent,
    HostState,
    RingEvent,
    RingState,
    RolloutEvent,
    RolloutState,
    gate_transition,
    host_transition,
    ring_transition,
    rollout_transition,
)

log = logging.getLogger("patchgate.engine")

StepHook = Callable[[str], None]
T = TypeVar("T")

LOCK_NAME = "engine"
OUTPUT_TAIL_CHARS = 2000
ACTIVE_STATES = [s.value for s in RolloutState if s not in ROLLOUT_TERMINAL]
_DONE_RINGS = {RingState.DONE.value, RingState.SKIPPED.value}


@dataclass
class EngineDeps:
    db: Database
    executor: Executor
    health: HealthChecker
    inventory: Inventory
    clock: Clock
    concurrency: int = 50
    schedule: schedules.Schedules | None = None  # due times (issue 6)
    # Stored assessments older than this are not used to pin the patch set.
    assessment_max_age: dt.timedelta = dt.timedelta(hours=24)


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
        self._hook = hook or (lambda _step: None)
        self.owner = owner
        self._sem = asyncio.Semaphore(deps.concurrency)
        self._fresh_ops: set[str] = set()  # apply intents written by this instance
        self._lease_waits: set[tuple[int, int]] = set()
        self._wake = asyncio.Event()  # set by wake(): cuts run()'s idle wait short
        self.last_tick_at: float | None = None  # Unix time (real, not the Clock port's)

    # --- plumbing -------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.deps.clock.now()

    @asynccontextmanager
    async def _tx(self, step: str) -> AsyncIterator[AsyncSession]:
        """A write transaction that checks the leader epoch; the hook runs after commit."""
        async with unit_of_work(self.db) as session:
            if self.epoch is not None:
                # FOR SHARE: a takeover's epoch bump waits for this transaction, so no
                # write checked against the old epoch can commit after the new leader began.
                current = await session.scalar(
                    sa.select(LeaderState.epoch)
                    .where(LeaderState.name == LOCK_NAME)
                    .with_for_update(read=True)
                )
                if current != self.epoch:
                    raise StaleLeader(
                        f"leader epoch is {current}, this engine has {self.epoch}; stepping down"
                    )
            yield session
        self._hook(step)

    async def _event(
        self, session: AsyncSession, kind: str, rollout_id: int | None, /, **data: Any
    ) -> None:
        await audit.append(
            session, kind=kind, at=self.now(), actor="patchgate", rollout_id=rollout_id, data=data
        )

    async def _note(
        self,
        session: AsyncSession,
        rollout: Rollout,
        suffix: str,
        text: str,
        kind: str,
        **extra: Any,
    ) -> None:
        await outbox.enqueue(
            session,
            **rollout_note(rollout, suffix, text, now=self.now(), kind=kind, extra=extra or None),
        )

    async def _set_rollout(
        self,
        session: AsyncSession,
        rollout: Rollout,
        event: RolloutEvent,
        *,
        reason: str | None = None,
    ) -> None:
        before = rollout.state
        rollout.state = rollout_transition(RolloutState(before), event).value
        rollout.epoch = self.epoch or 0
        if reason:
            rollout.reason = reason
        if rollout.state in {s.value for s in ROLLOUT_TERMINAL}:
            rollout.finished_at = self.now()
            await session.execute(sa.delete(HostLease).where(HostLease.rollout_id == rollout.id))
        await self._event(
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
                    f"Rollout #{rollout.id} of plan {rollout.plan_name} "
                    f"(requested by <@{rollout.requested_by}>)",
                    now=self.now(),
                ),
            )

    async def _set_ring(
        self, session: AsyncSession, ring: Ring, event: RingEvent, *, reason: str | None = None
    ) -> None:
        before = ring.state
        ring.state = ring_transition(RingState(before), event).value
        if reason:
            ring.reason = reason
        if event == RingEvent.START:
            ring.started_at = self.now()
        if ring.state in (
            RingState.DONE,
            RingState.ROLLED_BACK,
            RingState.REJECTED,
            RingState.SKIPPED,
            RingState.FAILED,
        ):
            ring.finished_at = self.now()
        await self._event(
            session,
            "ring.state",
            ring.rollout_id,
            ring=ring.name,
            **{"from": before, "to": ring.state, "event": event.value, "reason": reason},
        )

    async def _set_host(
        self, session: AsyncSession, run: HostRun, event: HostEvent, *, error: str | None = None
    ) -> None:
        before = run.state
        run.state = host_transition(HostState(before), event).value
        if run.state in HOST_FAILURES:
            run.failure = True
        if error:
            run.error = error
        if run.state in (
            HostState.HEALTHY,
            HostState.FAILED,
            HostState.UNHEALTHY,
            HostState.UNREACHABLE,
            HostState.ROLLED_BACK,
            HostState.ROLLBACK_FAILED,
            HostState.SKIPPED,
            HostState.EXCEPTED,
        ):
            run.finished_at = self.now()
        await self._event(
            session,
            "host.state",
            run.rollout_id,
            host=run.host_name,
            **{"from": before, "to": run.state, "event": event.value, "error": error},
        )
        await tickets.on_host_state(session, run=run, now=self.now())

    async def _command(
        self, host: InventoryHost, command: str, call: Callable[[], Awaitable[T]]
    ) -> tuple[T | None, ExecutorError | None, dict[str, Any]]:
        """Run one executor call under the concurrency bound; returns (result, error, audit)."""
        started = time.monotonic()
        async with self._sem:
            try:
                result = await call()
                error = None
            except ExecutorError as exc:
                result, error = None, exc
        record: dict[str, Any] = {
            "host": host.name,
            "command": command,
            "duration_ms": round((time.monotonic() - started) * 1000),
        }
        exit_code = getattr(result, "exit_code", None)
        if exit_code is None and error is not None:
            exit_code = getattr(error, "exit_code", None)
        record["exit_code"] = exit_code
        if error is not None:
            record["error"] = str(error)
        return result, error, record

    def _hosts(self) -> dict[str, InventoryHost]:
        return {h.name: h for h in self.deps.inventory.hosts()}

    # --- the loop -------------------------------------------------------------------------

    async def tick(self) -> bool:
        progressed = await self._apply_requests()
        if self.deps.schedule is not None:
            progressed = await self.deps.schedule.check(self._tx, self.now()) or progressed
        progressed = await self._expire_gates() or progressed
        async with read_only(self.db) as session:
            ids = list(
                await session.scalars(
                    sa.select(Rollout.id)
                    .where(Rollout.state.in_(ACTIVE_STATES))
                    .order_by(Rollout.id)
                )
            )
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
            async with self._tx("request.applied") as session:
                request = await session.get(Request, request_id)
                if request is None or request.state != RequestState.PENDING.value:
                    continue
                rollout = (
                    await session.get(Rollout, request.rollout_id) if request.rollout_id else None
                )
                request.processed_at = self.now()
                if rollout is None or rollout.state not in ACTIVE_STATES:
                    request.state = RequestState.REFUSED.value
                    request.result = "rollout is no longer active"
                    continue
                who = request.requested_by
                reason = request.payload.get("reason")
                if request.kind == RequestKind.PAUSE.value:
                    rollout.hold_reason = reason or f"paused by {who}"
                    rollout.hold_by, rollout.held_at = who, self.now()
                    text = f"Paused by <@{who}>: no new batch starts until resumed"
                elif request.kind == RequestKind.RESUME.value:
                    rollout.hold_reason = rollout.hold_by = rollout.held_at = None
                    text = f"Resumed by <@{who}>"
                elif request.kind == RequestKind.ABORT.value:
                    rollout.abort_requested_by, rollout.abort_reason = who, reason
                    text = f"Abort requested by <@{who}>: stopping at the next batch boundary"
                else:  # pragma: no cover - the CHECK constraint allows nothing else
                    request.state = RequestState.REFUSED.value
                    continue
                request.state = RequestState.DONE.value
                request.result = text
                await self._event(
                    session,
                    f"rollout.{request.kind}",
                    rollout.id,
                    by=who,
                    reason=reason,
                    request_id=request.id,
                )
                await self._note(
                    session, rollout, f"request:{request.id}", text, f"rollout.{request.kind}"
                )
        return bool(pending)

    async def _expire_gates(self) -> bool:
        async with self._tx("gates.expired") as session:
            touched = await gates.expire_due(session, now=self.now())
            lapsed = await exceptions.expire_due(session, now=self.now())
            synced = await tickets.sync(session, now=self.now())
        return bool(touched) or bool(lapsed) or synced

    # --- one rollout, one step ----------------------------------------------------------------

    async def _advance_isolated(self, rollout_id: int) -> bool:
        """One rollout's step; an unexpected error is logged with a reference and does
        not cancel the other rollouts' work (the step is retried at the next tick)."""
        try:
            return await self._advance(rollout_id)
        except StaleLeader:
            raise
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("rollout %s: step failed (ref %s); retrying next tick", rollout_id, ref)
            return False

    async def _advance(self, rollout_id: int) -> bool:
        async with read_only(self.db) as session:
            rollout = await session.get(Rollout, rollout_id)
        if rollout is None or rollout.state not in ACTIVE_STATES:
            return False
        plan = PatchPlan.model_validate(rollout.plan_snapshot)
        state = RolloutState(rollout.state)
        if state in (RolloutState.SCHEDULED, RolloutState.WAITING_WINDOW):
            if rollout.hold_reason:
                return False
            if not schedules.window_open(rollout, plan, self.now()):
                if state == RolloutState.SCHEDULED:
                    return await self._window_closed(rollout_id, plan)
                return False
            if state == RolloutState.WAITING_WINDOW and rollout.started_at is not None:
                return await self._window_opened(rollout_id, plan)
            return await self._begin(rollout_id, plan)
        if state == RolloutState.ASSESSING:
            return await self._assess(rollout_id, plan)
        if state in (RolloutState.RUNNING, RolloutState.AWAITING_APPROVAL):
            return await self._drive(rollout_id, plan)
        return False  # waiting_window: the scheduler's business

    async def _window_closed(self, rollout_id: int, plan: PatchPlan) -> bool:
        """The rollout's window has (nearly) ended: wait for the next one, or abort."""
        async with self._tx("rollout.window_closed") as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            abort = bool(plan.schedule and plan.schedule.on_window_end == "abort")
            text = schedules.window_closed_text(rollout, plan, abort=abort)
            if abort:
                await self._finish(session, rollout, RolloutEvent.ABORT, reason=text)
                await self._note(session, rollout, "finished", text, "rollout.aborted")
            else:
                await self._set_rollout(session, rollout, RolloutEvent.WINDOW_CLOSED)
                end = rollout.window_end.isoformat() if rollout.window_end else "none"
                await self._note(session, rollout, f"window-closed:{end}", text, "rollout.waiting")
        return True

    async def _window_opened(self, rollout_id: int, plan: PatchPlan) -> bool:
        async with self._tx("rollout.window_opened") as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            await self._set_rollout(session, rollout, RolloutEvent.WINDOW_OPENED)
        return True

    async def _begin(self, rollout_id: int, plan: PatchPlan) -> bool:
        hosts = list(self.deps.inventory.hosts())
        async with self._tx("rollout.assessing") as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            now = self.now()
            excepted = await exceptions.excepted_hosts(session, now=now)
            held = await exceptions.held_packages(session, now=now)
            layout = layout_rollout(plan, hosts, excepted=excepted)
            rollout.started_at = now
            await self._set_rollout(session, rollout, RolloutEvent.ASSESS)
            total = 0
            for ring_layout in layout.rings:
                ring = Ring(
                    rollout_id=rollout.id,
                    position=ring_layout.position,
                    name=ring_layout.name,
                    host_count=len(ring_layout.hosts),
                    batch_size=ring_layout.batch_size,
                    batch_count=len(ring_layout.batches),
                    failure_budget=ring_layout.failure_budget,
                )
                session.add(ring)
                await session.flush()
                for number, batch in enumerate(ring_layout.batches):
                    for name in batch:
                        session.add(
                            HostRun(
                                rollout_id=rollout.id,
                                ring_id=ring.id,
                                host_name=name,
                                batch=number,
                                held_packages=held.get(name),
                            )
                        )
                        total += 1
                for name in ring_layout.excepted:
                    session.add(
                        HostRun(
                            rollout_id=rollout.id,
                            ring_id=ring.id,
                            host_name=name,
                            batch=-1,
                            state=HostState.EXCEPTED.value,
                            error="active exception",
                        )
                    )
            await self._event(
                session,
                "rollout.layout",
                rollout.id,
                rings={r.name: len(r.hosts) for r in layout.rings},
                excepted=sorted(excepted & {h.name for h in hosts}),
                left_out=layout.left_out,
            )
            await outbox.enqueue(
                session,
                **rollout_parent(
                    rollout,
                    f"Rollout #{rollout.id} of plan {plan.name}: assessing {total} hosts "
                    f"in {len(layout.rings)} rings (requested by <@{rollout.requested_by}>)"
                    + schedules.window_suffix(rollout, plan),
                    now=now,
                ),
            )
        return True

    async def _assess(self, rollout_id: int, plan: PatchPlan) -> bool:
        async with read_only(self.db) as session:
            runs = list(
                await session.scalars(
                    sa.select(HostRun)
                    .join(Ring, Ring.id == HostRun.ring_id)
                    .where(
                        HostRun.rollout_id == rollout_id, HostRun.state == HostState.PENDING.value
                    )
                    .order_by(Ring.position, HostRun.batch, HostRun.host_name)
                )
            )
        inventory = self._hosts()
        unknown = [r for r in runs if r.platform is None]
        if unknown:
            await self._gather_facts(rollout_id, unknown, inventory)
            return True
        return await self._pin(rollout_id, plan, runs, inventory)

    async def _gather_facts(
        self, rollout_id: int, runs: Sequence[HostRun], inventory: Mapping[str, InventoryHost]
    ) -> None:
        async def one(
            run: HostRun,
        ) -> tuple[HostRun, HostFacts | None, str | None, dict[str, Any] | None]:
            host = inventory.get(run.host_name)
            if host is None:
                return run, None, "host is no longer in the inventory", None
            facts, error, record = await self._command(
                host, "facts", lambda: self.deps.executor.facts(host)
            )
            return run, facts, (str(error) if error else None), record

        results = await asyncio.gather(*(one(r) for r in runs))
        async with self._tx("rollout.facts") as session:
            for run_snapshot, facts, error, record in results:
                run = await session.get(HostRun, run_snapshot.id)
                assert run is not None
                if record:
                    await self._event(session, "host.command", rollout_id, **record)
                if facts is None:
                    await self._set_host(session, run, HostEvent.LOST, error=error)
                    await self._record_host(session, run.host_name, None, error)
                    continue
                run.platform = facts.platform
                run.boot_id_before = facts.boot_id
                await self._record_host(session, run.host_name, facts, None)

    async def _record_host(
        self, session: AsyncSession, name: str, facts: HostFacts | None, error: str | None
    ) -> None:
        host = await session.scalar(sa.select(Host).where(Host.name == name))
        if host is None:
            host = Host(name=name)
            session.add(host)
        host.reachable = facts is not None
        host.last_error = error
        if facts is not None:
            host.os_id, host.os_version, host.arch = facts.os_id, facts.os_version, facts.arch
            host.kernel, host.package_manager = facts.kernel, facts.package_manager
            host.boot_id, host.reboot_required = facts.boot_id, facts.reboot_required
            host.facts_at = self.now()

    async def _pin(
        self,
        rollout_id: int,
        plan: PatchPlan,
        runs: Sequence[HostRun],
        inventory: Mapping[str, InventoryHost],
    ) -> bool:
        by_platform: dict[str, list[HostRun]] = {}
        for run in runs:
            by_platform.setdefault(run.platform or "", []).append(run)
        async with read_only(self.db) as session:
            stored = await assessment.latest(session, hosts=[r.host_name for r in runs])
        now = self.now()
        patchset: dict[str, dict[str, str]] = {}
        baselines: dict[str, dict[str, Any]] = {}  # platform -> how its set was chosen
        records: list[dict[str, Any]] = []
        lost: dict[int, str] = {}
        failure: str | None = None
        for platform, members in sorted(by_platform.items()):
            chosen = assessment.baseline_for(
                [r.host_name for r in members],
                stored,
                plan.packages,
                now=now,
                max_age=self.deps.assessment_max_age,
            )
            refusal = assessment.refusal_without_assessment(
                platform, [r.host_name for r in members], plan.packages
            )
            if not chosen.fresh and refusal:
                failure = refusal
                break
            # Hosts with a fresh assessment first, the one with the most selected fixes
            # first (ring order breaks ties), then the others if the baseline can be
            # applied without advisory data (the live path).
            fresh = set(chosen.fresh)
            selected = Counter(f.host for f in chosen.result.selected)
            order = sorted(
                (r for r in members if r.host_name in fresh),
                key=lambda r: -selected[r.host_name],
            )
            if refusal is None:
                order += [r for r in members if r.host_name not in fresh]
            for run in order:
                host = inventory.get(run.host_name)
                if host is None:
                    lost[run.id] = "host is no longer in the inventory"
                    continue
                if run.host_name in fresh:
                    specs, elsewhere = chosen.specs_for(run.host_name)
                    baselines[platform] = {
                        "source": "assessment",
                        "reference": run.host_name,
                        "assessed_at": chosen.assessed_at.isoformat()
                        if chosen.assessed_at
                        else None,
                        "selected": chosen.selected_packages,
                        "left_out": {f.package: why for f, why in chosen.result.left_out},
                        "not_on_reference": elsewhere,
                        "not_assessed": [*chosen.missing, *(h for h, _ in chosen.stale)],
                    }
                else:
                    upgradable, error, record = await self._command(
                        host, "list_upgradable", partial(self.deps.executor.list_upgradable, host)
                    )
                    records.append(record)
                    if error is not None or upgradable is None:
                        lost[run.id] = str(error)
                        continue
                    specs = select_packages(upgradable, plan.packages)
                    baselines[platform] = {"source": "live", "reference": run.host_name}
                if not specs:
                    patchset[platform] = {}
                    break
                simulation, error, record = await self._command(
                    host, "simulate", partial(self.deps.executor.simulate, host, specs)
                )
                records.append(record)
                if (
                    run.host_name in fresh
                    and error is not None
                    and not isinstance(error, HostUnreachable)
                ):
                    # e.g. an assessed version is gone: the assessment no longer holds
                    failure = (
                        f"{platform}: the assessed fixes ({', '.join(specs)}) cannot be "
                        f"installed on {run.host_name}: {error}. Run `patchgate assess "
                        "--refresh` and start the plan again"
                    )
                    break
                if error is not None or simulation is None:
                    lost[run.id] = str(error)
                    continue
                try:
                    patchset[platform] = pin(platform, simulation).packages
                except Conflict as exc:
                    failure = str(exc)
                break
            if failure:
                break
            if platform not in patchset and refusal and len(order) < len(members):
                # every host with a fresh assessment was lost; the rest cannot be pinned
                failure = refusal
                break
        async with self._tx("rollout.assessed") as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            for record in records:
                await self._event(session, "host.command", rollout_id, **record)
            for run_id, lost_error in lost.items():
                lost_run = await session.get(HostRun, run_id)
                assert lost_run is not None
                await self._set_host(session, lost_run, HostEvent.LOST, error=lost_error)
            if failure:
                await self._finish(session, rollout, RolloutEvent.FAILED, reason=failure)
                await self._note(
                    session,
                    rollout,
                    "assessment-failed",
                    f"Assessment failed: {failure}",
                    "rollout.failed",
                )
                return True
            missing = {p for p in by_platform if p not in patchset}
            if missing:
                # Every host of these platforms was lost during assessment; they are
                # already marked unreachable. Nothing to pin for them.
                pass
            rollout.patchset = patchset
            rollout.patchset_hash = patchset_hash(patchset)
            await self._set_rollout(session, rollout, RolloutEvent.ASSESSED)
            await self._event(
                session,
                "rollout.pinned",
                rollout_id,
                patchset=patchset,
                patchset_hash=rollout.patchset_hash,
                baseline=baselines,
            )
            await self._note(
                session,
                rollout,
                "pinned",
                f"Patch set {rollout.patchset_hash[:12]} pinned:\n{describe(patchset)}"
                + _baseline_lines(baselines),
                "rollout.pinned",
                patchset_hash=rollout.patchset_hash,
            )
        return True

    # --- rings ----------------------------------------------------------------------------

    async def _drive(self, rollout_id: int, plan: PatchPlan) -> bool:
        async with read_only(self.db) as session:
            rollout = await session.get(Rollout, rollout_id)
            rings = list(
                await session.scalars(
                    sa.select(Ring).where(Ring.rollout_id == rollout_id).order_by(Ring.position)
                )
            )
        assert rollout is not None
        ring = next((r for r in rings if r.state not in _DONE_RINGS), None)
        if rollout.abort_requested_by and (ring is None or ring.state != RingState.ROLLING_BACK):
            return await self._abort(rollout_id, plan, ring)
        if ring is None:
            async with self._tx("rollout.succeeded") as session:
                fresh = await session.get(Rollout, rollout_id)
                assert fresh is not None
                await self._set_rollout(session, fresh, RolloutEvent.COMPLETED)
                await self._note(
                    session,
                    fresh,
                    "finished",
                    await self._summary(session, fresh, "succeeded"),
                    "rollout.succeeded",
                    summary=await reports.summary_facts(session, fresh),
                )
            return True
        state = RingState(ring.state)
        if state == RingState.PENDING:
            return await self._ring_pending(rollout, plan, ring)
        if state == RingState.PATCHING:
            if ring.next_batch >= ring.batch_count:
                async with self._tx("ring.verifying") as session:
                    fresh_ring = await session.get(Ring, ring.id)
                    assert fresh_ring is not None
                    await self._set_ring(session, fresh_ring, RingEvent.VERIFY)
                return True
            if rollout.hold_reason:
                return False
            if not schedules.window_open(rollout, plan, self.now()):
                return await self._window_closed(rollout_id, plan)
            return await self._run_batch(rollout, plan, ring)
        if state == RingState.VERIFYING:
            async with self._tx("ring.done") as session:
                fresh_ring = await session.get(Ring, ring.id)
                fresh = await session.get(Rollout, rollout_id)
                assert fresh_ring is not None and fresh is not None
                await self._set_ring(session, fresh_ring, RingEvent.VERIFIED)
                counts = await self._ring_counts(session, ring.id)
                await self._note(
                    session,
                    fresh,
                    f"ring:{ring.position}:done",
                    f"Ring {ring.name} done: {_fmt_counts(counts)}",
                    "ring.done",
                )
            return True
        if state == RingState.ROLLING_BACK:
            return await self._rollback_ring(rollout, plan, ring)
        # failed / rolled_back / rejected rings end the rollout in the same transaction;
        # reaching here means an inconsistent row: end the rollout rather than spin.
        async with self._tx("rollout.failed") as session:
            fresh = await session.get(Rollout, rollout_id)
            assert fresh is not None
            await self._finish(
                session, fresh, RolloutEvent.FAILED, reason=f"ring {ring.name} is {ring.state}"
            )
        return True

    async def _ring_pending(self, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
        spec = plan.rings[ring.position].gate
        if spec.type != "none":
            async with read_only(self.db) as session:
                gate = await session.scalar(sa.select(Gate).where(Gate.ring_id == ring.id))
            if gate is None:
                if rollout.hold_reason:
                    return False
                return await self._open_gate(rollout, plan, ring)
            if gate.state == GateState.OPEN:
                if gate.kind == GateKind.AUTO and gate.soak_until and self.now() >= gate.soak_until:
                    async with self._tx("gate.auto_approved") as session:
                        fresh_gate = await session.get(Gate, gate.id, with_for_update=True)
                        assert fresh_gate is not None
                        if fresh_gate.state == GateState.OPEN:
                            fresh_gate.state = gate_transition(
                                GateState.OPEN, GateEvent.APPROVE
                            ).value
                            fresh_gate.decided_at = self.now()
                            fresh_gate.decided_by = "patchgate"
                            fresh_gate.reason = "soak time elapsed"
                            await self._event(
                                session,
                                "gate.state",
                                rollout.id,
                                gate_id=gate.id,
                                to=fresh_gate.state,
                                reason="soak time elapsed",
                            )
                    return True
                return False
            if gate.state in (GateState.REJECTED, GateState.EXPIRED):
                async with self._tx("rollout.rejected") as session:
                    fresh = await session.get(Rollout, rollout.id)
                    fresh_ring = await session.get(Ring, ring.id)
                    assert fresh is not None and fresh_ring is not None
                    await self._set_ring(session, fresh_ring, RingEvent.REJECT, reason=gate.reason)
                    why = f"gate for ring {ring.name} {gate.state}" + (
                        f": {gate.reason}" if gate.reason else ""
                    )
                    await self._finish(session, fresh, RolloutEvent.GATE_REJECTED, reason=why)
                    await self._gate_closed(session, fresh, gate.id, fresh_ring)
                    await self._note(
                        session,
                        fresh,
                        "finished",
                        f"Rollout #{rollout.id} stopped: {why}",
                        "rollout.rejected",
                        summary=await reports.summary_facts(session, fresh),
                    )
                return True
            if rollout.state == RolloutState.AWAITING_APPROVAL:
                async with self._tx("gate.passed") as session:
                    fresh = await session.get(Rollout, rollout.id)
                    assert fresh is not None
                    await self._set_rollout(session, fresh, RolloutEvent.GATE_APPROVED)
                    await self._gate_closed(session, fresh, gate.id, ring)
                    await self._note(
                        session,
                        fresh,
                        f"gate:{gate.id}:passed",
                        f"Gate for ring {ring.name} approved; continuing",
                        "gate.approved",
                    )
                return True
        if rollout.hold_reason:
            return False
        unavailable = await self._check_pinned_available(rollout, ring)
        async with self._tx("ring.started") as session:
            fresh = await session.get(Rollout, rollout.id)
            fresh_ring = await session.get(Ring, ring.id)
            assert fresh is not None and fresh_ring is not None
            if unavailable:
                why = (
                    f"pinned versions no longer available ({', '.join(unavailable)}); "
                    f"no host in ring {ring.name} was touched. Start the plan again to "
                    "re-assess (the new patch set goes through the gates again)"
                )
                await self._set_ring(session, fresh_ring, RingEvent.FAIL, reason=why)
                await self._finish(session, fresh, RolloutEvent.FAILED, reason=why)
                await self._note(
                    session,
                    fresh,
                    "finished",
                    f"Rollout #{rollout.id} failed: {why}",
                    "rollout.failed",
                    summary=await reports.summary_facts(session, fresh),
                )
                return True
            await self._set_ring(session, fresh_ring, RingEvent.START)
            await self._note(
                session,
                fresh,
                f"ring:{ring.position}:started",
                f"Ring {ring.name} started: {ring.host_count} hosts in "
                f"{ring.batch_count} batches of up to {ring.batch_size}, failure "
                f"budget {ring.failure_budget}",
                "ring.started",
            )
        return True

    async def _open_gate(self, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
        spec = plan.rings[ring.position].gate
        now = self.now()
        async with self._tx("gate.opened") as session:
            fresh = await session.get(Rollout, rollout.id)
            assert fresh is not None
            tested = set(
                await session.scalars(
                    sa.select(HostRun.platform)
                    .join(Ring, Ring.id == HostRun.ring_id)
                    .where(
                        HostRun.rollout_id == rollout.id,
                        Ring.position < ring.position,
                        HostRun.state == HostState.HEALTHY.value,
                    )
                )
            )
            mine = set(
                await session.scalars(
                    sa.select(HostRun.platform).where(
                        HostRun.ring_id == ring.id, HostRun.platform.is_not(None)
                    )
                )
            )
            untested = sorted(p for p in mine - tested if p)
            kind = GateKind.AUTO if spec.type == "auto" else GateKind.APPROVAL
            gate = Gate(
                rollout_id=rollout.id,
                ring_id=ring.id,
                kind=kind.value,
                quorum=spec.quorum,
                patchset_hash=fresh.patchset_hash,
                untested_platforms=untested,
                opened_at=now,
            )
            if kind == GateKind.AUTO:
                gate.soak_until = now + spec.soak
            else:
                gate.expires_at = now + spec.timeout
            session.add(gate)
            await session.flush()
            await self._set_rollout(session, fresh, RolloutEvent.GATE_OPENED)
            await self._event(
                session,
                "gate.opened",
                rollout.id,
                gate_id=gate.id,
                ring=ring.name,
                kind=kind.value,
                quorum=spec.quorum,
                patchset_hash=fresh.patchset_hash,
                untested_platforms=untested,
            )
            if kind == GateKind.APPROVAL:
                approvers = spec.approvers
                who = ", ".join(
                    [f"<@{u}>" for u in (approvers.users if approvers else [])]
                    + [f"<!subteam^{g}>" for g in (approvers.groups if approvers else [])]
                )
                text = (
                    f"Approval needed before ring {ring.name} ({ring.host_count} hosts): "
                    f"{spec.quorum} of {who}. Patch set {(fresh.patchset_hash or '')[:12]}. "
                    f"Expires {gate.expires_at:%Y-%m-%d %H:%M} UTC."
                )
                if untested:
                    text += f" Not tested in an earlier ring: {', '.join(untested)}."
            else:
                text = (
                    f"Ring {ring.name} starts automatically after soaking until "
                    f"{gate.soak_until:%Y-%m-%d %H:%M} UTC"
                )
            await self._note(
                session,
                fresh,
                f"gate:{gate.id}:opened",
                text,
                "gate.opened",
                gate_id=gate.id,
                gate_kind=kind.value,
                ring=ring.name,
                patchset_hash=fresh.patchset_hash,
                untested_platforms=untested,
                quorum=spec.quorum,
                **await reports.gate_context(session, fresh, ring),
            )
        return True

    async def _check_pinned_available(self, rollout: Rollout, ring: Ring) -> list[str]:
        """Preflight one reachable host per platform of the ring; list pins that are gone."""
        async with read_only(self.db) as session:
            runs = list(
                await session.scalars(
                    sa.select(HostRun)
                    .where(HostRun.ring_id == ring.id, HostRun.state == HostState.PENDING.value)
                    .order_by(HostRun.batch, HostRun.host_name)
                )
            )
        inventory = self._hosts()
        patchset = rollout.patchset or {}
        seen: set[str] = set()
        unavailable: list[str] = []
        for run in runs:
            platform = run.platform or ""
            host = inventory.get(run.host_name)
            if platform in seen or host is None or not patchset.get(platform):
                continue
            result, error, _ = await self._command(
                host,
                "preflight",
                partial(self.deps.executor.preflight, host, patchset[platform]),
            )
            if error is not None or result is None:
                continue  # try another host of this platform
            seen.add(platform)
            unavailable.extend(f"{platform}: {item}" for item in result.unavailable)
        return unavailable

    async def _run_batch(self, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
        number = ring.next_batch
        async with read_only(self.db) as session:
            run_ids = list(
                await session.scalars(
                    sa.select(HostRun.id)
                    .where(HostRun.ring_id == ring.id, HostRun.batch == number)
                    .order_by(HostRun.host_name)
                )
            )
        try:
            leased = await self._lease(rollout, plan, ring, run_ids)
        except IntegrityError:
            # Another rollout took one of these leases at the same moment (PostgreSQL,
            # read committed): nothing was written. Its leases are committed now, so a
            # second look sees them and waits or skips as the plan says.
            try:
                leased = await self._lease(rollout, plan, ring, run_ids)
            except IntegrityError:
                return False
        if not leased:
            return False
        inventory = self._hosts()
        patchset = rollout.patchset or {}
        await _finish_all(
            [self._work_host(run_id, plan, patchset, inventory) for run_id in run_ids]
        )
        async with self._tx("batch.done") as session:
            fresh = await session.get(Rollout, rollout.id)
            fresh_ring = await session.get(Ring, ring.id)
            assert fresh is not None and fresh_ring is not None
            if fresh_ring.state != RingState.PATCHING or fresh_ring.next_batch != number:
                return True  # already recorded before a restart
            batch_runs = list(
                await session.scalars(sa.select(HostRun).where(HostRun.id.in_(run_ids)))
            )
            await session.execute(
                sa.delete(HostLease).where(
                    HostLease.rollout_id == rollout.id,
                    HostLease.host_name.in_([r.host_name for r in batch_runs]),
                )
            )
            failures = (
                await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(HostRun)
                    .where(HostRun.ring_id == ring.id, HostRun.failure.is_(True))
                )
                or 0
            )
            lines = [
                f"{r.host_name}: {r.state}" + (f" ({r.error})" if r.error else "")
                for r in batch_runs
                if r.failure or r.state != HostState.HEALTHY
            ]
            summary = (
                f"Ring {ring.name} batch {number + 1}/{ring.batch_count}: "
                f"{sum(r.state == HostState.HEALTHY for r in batch_runs)} of "
                f"{len(batch_runs)} healthy; failures in ring {failures}/"
                f"budget {ring.failure_budget}"
            )
            if lines:
                summary += "\n" + "\n".join(lines[:20])
                if len(lines) > 20:
                    summary += f"\n… and {len(lines) - 20} more"
            await self._note(
                session,
                fresh,
                f"ring:{ring.position}:batch:{number}",
                summary,
                "batch.done",
                failures=failures,
            )
            if failures > fresh_ring.failure_budget:
                why = (
                    f"failure budget exceeded in ring {ring.name}: {failures} failed, "
                    f"budget {fresh_ring.failure_budget}"
                )
                await self._set_ring(session, fresh_ring, RingEvent.FAIL, reason=why)
                if plan.rollback.ring_on_budget_exceeded:
                    await self._set_ring(session, fresh_ring, RingEvent.ROLLBACK)
                    fresh.reason = why
                    failed = [
                        r.host_name
                        for r in await session.scalars(
                            sa.select(HostRun).where(
                                HostRun.ring_id == ring.id, HostRun.failure.is_(True)
                            )
                        )
                    ]
                    await outbox.enqueue(
                        session,
                        **notifications.rollback_alert(
                            fresh,
                            fresh_ring,
                            f"Rollout #{rollout.id} of plan {rollout.plan_name}: {why}; rolling "
                            f"back ring {ring.name}. Failed: {', '.join(failed[:20])}"
                            + (f" and {len(failed) - 20} more" if len(failed) > 20 else ""),
                            now=self.now(),
                            hosts=failed,
                            tickets=await tickets.ring_tickets(session, ring_id=fresh_ring.id),
                        ),
                    )
                else:
                    await self._finish(session, fresh, RolloutEvent.FAILED, reason=why)
                    await self._note(
                        session,
                        fresh,
                        "finished",
                        f"Rollout #{rollout.id} failed: {why}",
                        "rollout.failed",
                        summary=await reports.summary_facts(session, fresh),
                    )
                return True
            fresh_ring.next_batch = number + 1
        return True

    async def _lease(
        self, rollout: Rollout, plan: PatchPlan, ring: Ring, run_ids: Sequence[int]
    ) -> bool:
        """Take the host leases for a batch: all or nothing (wait), or skip busy hosts."""
        async with self._tx("batch.leased") as session:
            runs = list(await session.scalars(sa.select(HostRun).where(HostRun.id.in_(run_ids))))
            names = [
                r.host_name
                for r in runs
                if r.state not in (HostState.SKIPPED, HostState.EXCEPTED, HostState.UNREACHABLE)
            ]
            held = {
                lease.host_name: lease.rollout_id
                for lease in await session.scalars(
                    sa.select(HostLease).where(HostLease.host_name.in_(names))
                )
            }
            busy = {n: rid for n, rid in held.items() if rid != rollout.id}
            if busy and plan.lease_conflict == "wait":
                key = (rollout.id, ring.next_batch)
                if key not in self._lease_waits:
                    self._lease_waits.add(key)
                    await self._event(
                        session, "batch.waiting_for_lease", rollout.id, ring=ring.name, busy=busy
                    )
                    fresh = await session.get(Rollout, rollout.id)
                    assert fresh is not None
                    await self._note(
                        session,
                        fresh,
                        f"ring:{ring.position}:batch:{ring.next_batch}:waiting",
                        "Waiting: "
                        + ", ".join(
                            f"{n} is being patched by rollout #{r}" for n, r in sorted(busy.items())
                        ),
                        "batch.waiting",
                    )
                return False
            for run in runs:
                if run.host_name in busy:
                    await self._set_host(
                        session,
                        run,
                        HostEvent.SKIP,
                        error=f"skipped: host is being patched by rollout #{busy[run.host_name]}",
                    )
            for name in names:
                if name not in held:
                    session.add(
                        HostLease(host_name=name, rollout_id=rollout.id, acquired_at=self.now())
                    )
        return True

    # --- one host ------------------------------------------------------------------------

    async def _work_host(
        self,
        run_id: int,
        plan: PatchPlan,
        patchset: Mapping[str, Mapping[str, str]],
        inventory: Mapping[str, InventoryHost],
    ) -> None:
        """Drive one host until its work in this batch is settled, resuming from its state."""
        for _ in range(20):  # each pass moves the state on; bounded as a safety net
            async with read_only(self.db) as session:
                run = await session.get(HostRun, run_id)
            assert run is not None
            host = inventory.get(run.host_name)
            state = HostState(run.state)
            if host is None and state in (
                HostState.PENDING,
                HostState.APPLYING,
                HostState.APPLIED,
                HostState.REBOOTING,
            ):
                async with self._tx("host.lost") as session:
                    fresh = await session.get(HostRun, run_id)
                    assert fresh is not None
                    await self._set_host(
                        session, fresh, HostEvent.LOST, error="host is no longer in the inventory"
                    )
                continue
            packages = dict(patchset.get(run.platform or "", {}))
            for held_package in run.held_packages or ():
                packages.pop(held_package, None)  # a package-scoped exception
            if state == HostState.PENDING:
                assert host is not None
                await self._preflight_and_intend(
                    run, host, packages, require_material=plan.rollback.require_material
                )
            elif state == HostState.APPLYING:
                assert host is not None
                await self._apply(run, host, packages)
            elif state == HostState.APPLIED:
                assert host is not None
                await self._after_apply(run, host, plan)
            elif state == HostState.REBOOTING:
                assert host is not None
                await self._reboot(run, host, plan)
            elif state == HostState.ROLLING_BACK or self._wants_rollback(run, plan):
                if host is None:
                    return
                await self._rollback_host(run, host)
            else:
                return

    @staticmethod
    def _wants_rollback(run: HostRun, plan: PatchPlan) -> bool:
        if run.before_versions is None:
            return False  # nothing was changed on the host
        if run.state == HostState.FAILED:
            return plan.rollback.on_patch_failure
        if run.state == HostState.UNHEALTHY:
            return plan.rollback.on_health_failure
        return False

    async def _preflight_and_intend(
        self,
        run: HostRun,
        host: InventoryHost,
        packages: Mapping[str, str],
        *,
        require_material: bool = True,
    ) -> None:
        preflight, error, record = await self._command(
            host, "preflight", lambda: self.deps.executor.preflight(host, packages)
        )
        async with self._tx("host.apply.intent") as session:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            await self._event(session, "host.command", run.rollout_id, **record)
            if isinstance(error, HostUnreachable):
                await self._set_host(session, fresh, HostEvent.LOST, error=str(error))
                return
            missing = list(preflight.rollback_material_missing) if preflight else []
            if (
                error is not None
                or preflight is None
                or not preflight.ok
                or (missing and require_material)
            ):
                problems = (
                    str(error)
                    if error
                    else "; ".join(
                        [
                            *(preflight.problems if preflight else []),
                            *(
                                f"unavailable {u}"
                                for u in (preflight.unavailable if preflight else [])
                            ),
                            *(f"no rollback material for {m}" for m in missing),
                        ]
                    )
                )
                await self._set_host(
                    session, fresh, HostEvent.APPLY_FAILED, error=f"preflight refused: {problems}"
                )
                return
            fresh.op_id = f"pg-{run.rollout_id}-{run.id}-{uuid.uuid4().hex[:8]}"
            fresh.started_at = self.now()
            self._fresh_ops.add(fresh.op_id)
            await self._set_host(session, fresh, HostEvent.APPLY)
            await self._event(
                session,
                "host.apply.intent",
                run.rollout_id,
                host=run.host_name,
                op_id=fresh.op_id,
                packages=dict(packages),
                **({"rollback_material_missing": missing} if missing else {}),
            )

    async def _apply(self, run: HostRun, host: InventoryHost, packages: Mapping[str, str]) -> None:
        op_id = run.op_id or ""
        executor = self.deps.executor
        records = []
        result: ApplyResult | None = None
        error: ExecutorError | None = None
        if op_id not in self._fresh_ops:
            # Resuming: the command may have run (or still be running) on the host.
            result, error, record = await self._command(
                host, "apply_status", lambda: executor.apply_status(host, op_id=op_id)
            )
            records.append(record)
        if result is None and error is None:
            result, error, record = await self._command(
                host, "apply", lambda: executor.apply(host, packages, op_id=op_id)
            )
            records.append(record)
        self._fresh_ops.discard(op_id)
        self._hook("host.apply.returned")
        async with self._tx("host.apply.result") as session:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            for record in records:
                await self._event(session, "host.command", run.rollout_id, **record)
            if fresh.state != HostState.APPLYING:
                return
            if error is not None or result is None:
                event = (
                    HostEvent.LOST if isinstance(error, HostUnreachable) else HostEvent.APPLY_FAILED
                )
                await self._set_host(session, fresh, event, error=str(error))
                return
            fresh.before_versions = dict(result.before)
            fresh.after_versions = dict(result.after)
            fresh.exit_code = result.exit_code
            fresh.output_tail = result.output_tail[-OUTPUT_TAIL_CHARS:]
            fresh.reboot_required = result.reboot_required
            wrong = sorted(n for n, v in packages.items() if result.after.get(n) != v)
            if not result.ok:
                await self._set_host(
                    session,
                    fresh,
                    HostEvent.APPLY_FAILED,
                    error=f"package command exited {result.exit_code}",
                )
            elif wrong:
                await self._set_host(
                    session,
                    fresh,
                    HostEvent.APPLY_FAILED,
                    error="installed versions differ from the pinned set: "
                    + ", ".join(f"{n}={result.after.get(n)}" for n in wrong),
                )
            else:
                await self._set_host(session, fresh, HostEvent.APPLIED)

    async def _after_apply(self, run: HostRun, host: InventoryHost, plan: PatchPlan) -> None:
        reboot = plan.reboot == "always" or (plan.reboot == "if-required" and run.reboot_required)
        if reboot:
            async with self._tx("host.reboot.intent") as session:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                await self._set_host(session, fresh, HostEvent.REBOOT)
            return
        await self._health(run, host, plan)

    async def _reboot(self, run: HostRun, host: InventoryHost, plan: PatchPlan) -> None:
        executor = self.deps.executor
        facts, error, record = await self._command(host, "facts", lambda: executor.facts(host))
        records = [record]
        if error is None and facts is not None and facts.boot_id == run.boot_id_before:
            _, error, record = await self._command(host, "reboot", lambda: executor.reboot(host))
            records.append(record)
        self._hook("host.reboot.returned")
        if error is not None:
            async with self._tx("host.reboot.result") as session:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                for record in records:
                    await self._event(session, "host.command", run.rollout_id, **record)
                await self._set_host(session, fresh, HostEvent.LOST, error=str(error))
            return
        await self._health(run, host, plan, records=records)

    async def _health(
        self,
        run: HostRun,
        host: InventoryHost,
        plan: PatchPlan,
        *,
        records: Sequence[dict[str, Any]] = (),
    ) -> None:
        checks = plan.checks_for(plan.rings[await self._ring_position(run.ring_id)])
        started = time.monotonic()
        async with self._sem:
            results = list(await self.deps.health.check(host, checks))
        self._hook("host.health.returned")
        async with self._tx("host.health.result") as session:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            for record in records:
                await self._event(session, "host.command", run.rollout_id, **record)
            await self._event(
                session,
                "host.health",
                run.rollout_id,
                host=run.host_name,
                duration_ms=round((time.monotonic() - started) * 1000),
                results=[{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results],
            )
            fresh.health = [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results]
            failed = [r for r in results if not r.ok]
            if failed:
                await self._set_host(
                    session,
                    fresh,
                    HostEvent.UNHEALTHY,
                    error="health check failed: "
                    + "; ".join(f"{r.name}: {r.detail}" for r in failed),
                )
            else:
                await self._set_host(session, fresh, HostEvent.HEALTHY)
                host_row = await session.scalar(sa.select(Host).where(Host.name == run.host_name))
                if host_row is not None:
                    host_row.last_patched_at = self.now()

    async def _ring_position(self, ring_id: int) -> int:
        async with read_only(self.db) as session:
            position = await session.scalar(sa.select(Ring.position).where(Ring.id == ring_id))
        assert position is not None
        return position

    async def _rollback_host(self, run: HostRun, host: InventoryHost) -> None:
        if run.state != HostState.ROLLING_BACK:
            async with self._tx("host.rollback.intent") as session:
                fresh = await session.get(HostRun, run.id)
                assert fresh is not None
                await self._set_host(session, fresh, HostEvent.ROLLBACK)
        snapshot = dict(run.before_versions or {})
        result, error, record = await self._command(
            host, "rollback", lambda: self.deps.executor.rollback(host, snapshot)
        )
        self._hook("host.rollback.returned")
        async with self._tx("host.rollback.result") as session:
            fresh = await session.get(HostRun, run.id)
            assert fresh is not None
            await self._event(session, "host.command", run.rollout_id, **record)
            if fresh.state != HostState.ROLLING_BACK:
                return
            if error is None and result is not None and result.ok:
                fresh.after_versions = dict(result.after)
                await self._set_host(session, fresh, HostEvent.ROLLED_BACK)
            else:
                detail = str(error) if error else f"exit {result.exit_code if result else '?'}"
                await self._set_host(
                    session, fresh, HostEvent.ROLLBACK_FAILED, error=f"rollback failed: {detail}"
                )

    # --- endings --------------------------------------------------------------------------

    async def _rollback_ring(self, rollout: Rollout, plan: PatchPlan, ring: Ring) -> bool:
        async with read_only(self.db) as session:
            runs = list(
                await session.scalars(
                    sa.select(HostRun).where(
                        HostRun.ring_id == ring.id,
                        HostRun.state.in_(
                            [
                                HostState.HEALTHY.value,
                                HostState.FAILED.value,
                                HostState.UNHEALTHY.value,
                                HostState.ROLLING_BACK.value,
                            ]
                        ),
                        HostRun.before_versions.is_not(None),
                    )
                )
            )
        inventory = self._hosts()
        work = []
        for run in runs:
            host = inventory.get(run.host_name)
            if host is not None:
                work.append(self._rollback_host(run, host))
        await _finish_all(work)
        async with self._tx("ring.rolled_back") as session:
            fresh = await session.get(Rollout, rollout.id)
            fresh_ring = await session.get(Ring, ring.id)
            assert fresh is not None and fresh_ring is not None
            await self._set_ring(session, fresh_ring, RingEvent.ROLLED_BACK)
            await self._finish(
                session,
                fresh,
                RolloutEvent.ROLLED_BACK,
                reason=fresh.reason or f"ring {ring.name} rolled back",
            )
            await self._note(
                session,
                fresh,
                "finished",
                await self._summary(session, fresh, "rolled back"),
                "rollout.rolled_back",
                summary=await reports.summary_facts(session, fresh),
            )
        return True

    async def _abort(self, rollout_id: int, plan: PatchPlan, ring: Ring | None) -> bool:
        if (
            plan.rollback.on_abort
            and ring is not None
            and ring.state == RingState.PATCHING
            and ring.next_batch > 0
        ):
            async with read_only(self.db) as session:
                runs = list(
                    await session.scalars(
                        sa.select(HostRun).where(
                            HostRun.ring_id == ring.id,
                            HostRun.batch == ring.next_batch - 1,
                            HostRun.state.in_(
                                [HostState.HEALTHY.value, HostState.ROLLING_BACK.value]
                            ),
                            HostRun.before_versions.is_not(None),
                        )
                    )
                )
            inventory = self._hosts()
            for run in runs:
                host = inventory.get(run.host_name)
                if host is not None:
                    await self._rollback_host(run, host)
        async with self._tx("rollout.aborted") as session:
            rollout = await session.get(Rollout, rollout_id)
            assert rollout is not None
            why = f"aborted by {rollout.abort_requested_by}" + (
                f": {rollout.abort_reason}" if rollout.abort_reason else ""
            )
            await self._finish(session, rollout, RolloutEvent.ABORT, reason=why)
            await self._note(
                session,
                rollout,
                "finished",
                f"Rollout #{rollout_id} {why}",
                "rollout.aborted",
                summary=await reports.summary_facts(session, rollout),
            )
        return True

    async def _finish(
        self, session: AsyncSession, rollout: Rollout, event: RolloutEvent, *, reason: str
    ) -> None:
        """End a rollout: skip what never ran, close open gates, then the rollout itself."""
        rings = list(
            await session.scalars(
                sa.select(Ring).where(Ring.rollout_id == rollout.id).order_by(Ring.position)
            )
        )
        for ring in rings:
            if ring.state in (RingState.PENDING, RingState.PATCHING):
                await self._set_ring(session, ring, RingEvent.SKIP, reason=reason)
        pending = list(
            await session.scalars(
                sa.select(HostRun).where(
                    HostRun.rollout_id == rollout.id, HostRun.state == HostState.PENDING.value
                )
            )
        )
        for run in pending:
            await self._set_host(session, run, HostEvent.SKIP, error="rollout stopped: " + reason)
        open_gates = list(
            await session.scalars(
                sa.select(Gate).where(
                    Gate.rollout_id == rollout.id, Gate.state == GateState.OPEN.value
                )
            )
        )
        for gate in open_gates:
            gate.state = gate_transition(GateState.OPEN, GateEvent.REJECT).value
            gate.decided_at, gate.decided_by, gate.reason = self.now(), "patchgate", reason
            await self._event(
                session, "gate.state", rollout.id, gate_id=gate.id, to=gate.state, reason=reason
            )
            gate_ring = await session.get(Ring, gate.ring_id)
            assert gate_ring is not None
            await self._gate_closed(session, rollout, gate.id, gate_ring)
        await self._set_rollout(session, rollout, event, reason=reason)
        if event == RolloutEvent.GATE_REJECTED:
            await tickets.on_gate_rejected(session, rollout=rollout, reason=reason, now=self.now())

    async def _gate_closed(
        self, session: AsyncSession, rollout: Rollout, gate_id: int, ring: Ring
    ) -> None:
        """Have the readiness message show the gate's decision instead of its buttons."""
        gate = await session.get(Gate, gate_id)
        if gate is None or gate.kind != GateKind.APPROVAL:
            return
        voters = list(
            await session.scalars(
                sa.select(Approval.user_id)
                .where(Approval.gate_id == gate.id, Approval.decision == Decision.APPROVE.value)
                .order_by(Approval.id)
            )
        )
        await outbox.enqueue(
            session,
            **notifications.gate_closed(rollout, gate, ring, approvers=voters, now=self.now()),
        )

    async def _ring_counts(self, session: AsyncSession, ring_id: int) -> dict[str, int]:
        rows = await session.execute(
            sa.select(HostRun.state, sa.func.count())
            .where(HostRun.ring_id == ring_id)
            .group_by(HostRun.state)
        )
        return {state: count for state, count in rows.all()}

    async def _summary(self, session: AsyncSession, rollout: Rollout, outcome: str) -> str:
        rows = await session.execute(
            sa.select(HostRun.state, sa.func.count())
            .where(HostRun.rollout_id == rollout.id)
            .group_by(HostRun.state)
        )
        counts = {state: count for state, count in rows.all()}
        text = f"Rollout #{rollout.id} of plan {rollout.plan_name} {outcome}: {_fmt_counts(counts)}"
        if rollout.reason:
            text += f". {rollout.reason}"
        return text


async def _finish_all(work: Sequence[Awaitable[None]]) -> None:
    """Run a batch's host work to the end, then re-raise the first error, if any.

    Not a TaskGroup: cancelling the other hosts when one fails could abandon a host
    mid-command, and (on SQLite) a transaction whose BEGIN was still waiting for the
    lock in the driver's thread, which then holds the database until collected.
    """
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _baseline_lines(baselines: Mapping[str, Mapping[str, Any]]) -> str:
    """How each platform's set was chosen, for the pinned note (one line per platform)."""
    lines = []
    for platform, how in sorted(baselines.items()):
        if how.get("source") != "assessment":
            lines.append(
                f"{platform}: from {how['reference']}'s upgradable packages (no fresh assessment)"
            )
            continue
        text = (
            f"{platform}: baseline over the assessments (reference {how['reference']}) "
            f"selected {len(how['selected'])}, left out {len(how['left_out'])}"
        )
        if how["not_on_reference"]:
            text += f"; not upgradable on the reference: {', '.join(how['not_on_reference'])}"
        if how["not_assessed"]:
            text += f"; not assessed: {len(how['not_assessed'])} host(s)"
        lines.append(text)
    return "".join(f"\n{line}" for line in lines)


def _fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no hosts"
