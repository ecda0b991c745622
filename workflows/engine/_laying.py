"""Beginning a rollout: lay out its rings, batches and host runs, then start assessing.

The layout is computed off the event loop (sorting and, for sampled rings, hashing a
100,000-host inventory takes a while) and written in short transactions (about
``CHUNK_SECONDS`` of writing each, at most ``LAYOUT_CHUNK`` host runs), so no other
writer waits long behind it; the rollout moves to ``assessing`` in the last one. A
layout that fits in one chunk is one transaction (``rollout.assessing``), as before.

Crash safety: until that last transaction the rollout has not moved, so after a crash
the engine begins it again, and the first chunk deletes the rings and host runs an
interrupted layout left (nothing has touched a host yet): the layout is redone, never
doubled. Every chunk locks the rollout's row first and stops if the rollout has begun
or settled meanwhile (another engine's work: it then owns the layout).
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from workflows import exceptions, outbox
from workflows import schedule as schedules
from workflows.engine._backend import layout_problems
from workflows.engine._context import Chunks, StepContext
from workflows.engine._endings import closing_note, finish
from workflows.engine._layout import RolloutLayout, layout_rollout
from workflows.engine._transitions import set_rollout
from workflows.hostos import check_problems
from workflows.models import HostRun, Ring, Rollout
from workflows.notify import NoteAbout, rollout_parent, texts
from workflows.plans import PatchPlan
from workflows.states import HostState, RolloutEvent, RolloutState

# Host runs a layout chunk writes at most (one INSERT of many rows each), and in its
# first chunk (a layout this small is one transaction, with the same step name as ever).
LAYOUT_CHUNK = 2000
LAYOUT_FIRST = 200
BEFORE_BEGIN = (RolloutState.SCHEDULED.value, RolloutState.WAITING_WINDOW.value)


def _rows(
    layout: RolloutLayout, held: dict[str, Any], backends: dict[str, str]
) -> list[dict[str, Any]]:
    """Every host run of the layout as an INSERT's values (``ring``: its position)."""
    rows: list[dict[str, Any]] = []
    for ring in layout.rings:
        for number, batch in enumerate(ring.batches):
            rows += [
                {
                    "ring": ring.position,
                    "host_name": name,
                    "batch": number,
                    "held_packages": held.get(name),
                    "backend": backends.get(name),
                }
                for name in batch
            ]
        rows += [
            {
                "ring": ring.position,
                "host_name": name,
                "batch": -1,
                "state": HostState.EXCEPTED.value,
                "error": "active exception",
            }
            for name in ring.excepted
        ]
    return rows


async def begin(ctx: StepContext, rollout_id: int, plan: PatchPlan) -> bool:
    """Lay out the rollout's rings, batches and host runs and start assessing."""
    hosts = await ctx.inventory_hosts()
    now = ctx.now()
    async with ctx.read() as session:
        excepted = await exceptions.excepted_hosts(session, now=now)
        held = await exceptions.held_packages(session, now=now)
    layout = await asyncio.to_thread(layout_rollout, plan, hosts, excepted=excepted)
    by_name = {h.name: h for h in hosts}
    laid_out = [(r.name, by_name[n]) for r in layout.rings for b in r.batches for n in b]
    backends, refused = layout_problems(ctx, plan, laid_out)
    unfit = check_problems(laid_out, plan.checks_for)  # systemd on a Windows host
    del by_name, laid_out
    rows = _rows(layout, held, backends)
    total = sum(1 for row in rows if row["batch"] >= 0)
    chunks = Chunks(rows, first=LAYOUT_FIRST, most=LAYOUT_CHUNK)
    ring_ids: dict[int, int] = {}
    while chunks:
        part, last = chunks.take()
        async with ctx.tx("rollout.assessing" if last else "rollout.laying_out") as session:
            rollout = await session.get(Rollout, rollout_id, with_for_update=True)
            if rollout is None or rollout.state not in BEFORE_BEGIN:
                return True  # begun or settled meanwhile by another: it owns the layout
            chunks.begin()
            if not ring_ids:
                # What an interrupted layout of this rollout left (a crash before its
                # last chunk) is laid out again from the start.
                await session.execute(sa.delete(HostRun).where(HostRun.rollout_id == rollout_id))
                await session.execute(sa.delete(Ring).where(Ring.rollout_id == rollout_id))
                for ring_layout in layout.rings:
                    ring = Ring(
                        rollout_id=rollout_id,
                        position=ring_layout.position,
                        name=ring_layout.name,
                        host_count=len(ring_layout.hosts),
                        batch_size=ring_layout.batch_size,
                        batch_count=len(ring_layout.batches),
                        failure_budget=ring_layout.failure_budget,
                    )
                    session.add(ring)
                    await session.flush()
                    ring_ids[ring_layout.position] = ring.id
            if part:
                values = [
                    {
                        **{k: v for k, v in row.items() if k != "ring"},
                        "rollout_id": rollout_id,
                        "ring_id": ring_ids[row["ring"]],
                    }
                    for row in part
                ]
                await session.execute(sa.insert(HostRun), values)
            chunks.end()
            if last:
                await _assessing(ctx, session, rollout, plan, layout, excepted, total)
                if refused or unfit:  # before any host is touched
                    reasons = [texts.backends_refused_why(refused)] if refused else []
                    reasons += [texts.checks_refused_why(unfit)] if unfit else []
                    why = "; ".join(reasons)
                    await finish(ctx, session, rollout, RolloutEvent.FAILED, reason=why)
                    await closing_note(
                        ctx, session, rollout, texts.failed_text(rollout.id, why), NoteAbout.FAILED
                    )
    return True


async def _assessing(
    ctx: StepContext,
    session: Any,
    rollout: Rollout,
    plan: PatchPlan,
    layout: RolloutLayout,
    excepted: frozenset[str] | set[str],
    total: int,
) -> None:
    """The layout's last transaction: the rollout starts assessing, with its event and
    its parent message."""
    rollout.started_at = ctx.now()
    await set_rollout(ctx, session, rollout, RolloutEvent.ASSESS)
    laid = {n for r in layout.rings for n in (*r.hosts, *r.excepted)} | set(layout.left_out)
    await ctx.event(
        session,
        "rollout.layout",
        rollout.id,
        rings={r.name: len(r.hosts) for r in layout.rings},
        excepted=sorted(set(excepted) & laid),
        left_out=layout.left_out,
    )
    await outbox.enqueue(
        session,
        **rollout_parent(
            rollout,
            texts.assessing_text(rollout, plan.name, total, len(layout.rings))
            + schedules.window_suffix(rollout, plan),
            now=ctx.now(),
        ),
    )
