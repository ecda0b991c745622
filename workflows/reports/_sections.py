"""The bundle's CSV sections about rollouts, host runs, approvals and exceptions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Approval, Gate, HostException, HostRun, Ring, Rollout
from workflows.reports._figures import Figures, Period
from workflows.reports._recompute_more import packages_text
from workflows.reports._zipout import ZipOut, rows, stream, ts
from workflows.states import ROLLOUT_SETTLED_VALUES, HostState

# --- sections ---------------------------------------------------------------------------


def period_rollouts(period: Period) -> Any:
    """The ids of the rollouts a bundle covers: created before its end, not finished
    before its start."""
    return sa.select(Rollout.id).where(
        Rollout.created_at < period.until,
        sa.or_(Rollout.finished_at.is_(None), Rollout.finished_at >= period.since),
    )


# rollouts.csv: one count column per host-run result, in this order
HOST_RESULT_COLUMNS = (
    "healthy",
    "failed",
    "unhealthy",
    "unreachable",
    "rolled_back",
    "rollback_failed",
    "excepted",
    "skipped",
    "up_to_date",  # nothing left to install, no package command run (issue 16)
)


async def write_rollouts(
    session: AsyncSession, out: ZipOut, period: Period, figures: Figures
) -> None:
    counts: dict[int, dict[str, int]] = {}
    grouped = (
        sa.select(HostRun.rollout_id, HostRun.state, sa.func.count())
        .where(HostRun.rollout_id.in_(period_rollouts(period)))
        .group_by(HostRun.rollout_id, HostRun.state)
    )
    for rollout_id, state, n in await rows(session, grouped):
        counts.setdefault(rollout_id, {})[state] = n
    terminal = set(ROLLOUT_SETTLED_VALUES)
    header = [
        "rollout",
        "plan",
        "state",
        "emergency",
        "source",
        "requested_by",
        "created",
        "started",
        "finished",
        "patchset_hash",
        "hosts",
        *HOST_RESULT_COLUMNS,
        "reason",
    ]
    query = (
        sa.select(
            Rollout.id,
            Rollout.plan_name,
            Rollout.state,
            Rollout.emergency,
            Rollout.source,
            Rollout.requested_by,
            Rollout.created_at,
            Rollout.started_at,
            Rollout.finished_at,
            Rollout.patchset_hash,
            Rollout.reason,
        )
        .where(Rollout.id.in_(period_rollouts(period)))
        .order_by(Rollout.id)
    )
    with out.csv("rollouts.csv", header) as writer:
        async for r in stream(session, query):
            by_state = counts.get(r.id, {})
            writer.row(
                [
                    r.id,
                    r.plan_name,
                    r.state,
                    "yes" if r.emergency else "no",
                    r.source,
                    r.requested_by,
                    ts(r.created_at),
                    ts(r.started_at),
                    ts(r.finished_at),
                    r.patchset_hash,
                    sum(by_state.values()),
                    *(by_state.get(s, 0) for s in HOST_RESULT_COLUMNS),
                    r.reason,
                ]
            )
            ended = r.state in terminal and period.contains(r.finished_at)
            figures.add_rollout(state=r.state, ended=ended)


async def write_host_runs(
    session: AsyncSession, out: ZipOut, period: Period, figures: Figures
) -> None:
    header = [
        "rollout",
        "ring",
        "batch",
        "host",
        "platform",
        "result",
        "packages",
        "started",
        "finished",
        "exit_code",
        "error",
        "ticket",
        "not_fully_patched",  # updates the run left behind: "pkg (why); …" (issue 16)
    ]
    query = (
        sa.select(
            HostRun.rollout_id,
            Ring.name,
            HostRun.batch,
            HostRun.host_name,
            HostRun.platform,
            HostRun.state,
            HostRun.before_versions,
            HostRun.after_versions,
            HostRun.started_at,
            HostRun.finished_at,
            HostRun.exit_code,
            HostRun.error,
            HostRun.ticket_key,
            HostRun.left_over,
        )
        .join(Ring, Ring.id == HostRun.ring_id)
        .where(HostRun.rollout_id.in_(period_rollouts(period)))
        .order_by(HostRun.rollout_id, HostRun.host_name)
    )
    # What a rolled-back host tried: its platform's pinned versions in that rollout.
    pinned: dict[int, dict[str, Any]] = {
        rollout_id: patchset or {}
        for rollout_id, patchset in await rows(
            session,
            sa.select(Rollout.id, Rollout.patchset).where(Rollout.id.in_(period_rollouts(period))),
        )
    }
    with out.csv("host_runs.csv", header) as writer:
        async for r in stream(session, query):
            attempted = (
                pinned.get(r.rollout_id, {}).get(r.platform or "", {})
                if r.state == HostState.ROLLED_BACK
                else None
            )
            writer.row(
                [
                    r.rollout_id,
                    r.name,
                    r.batch,
                    r.host_name,
                    r.platform,
                    r.state,
                    packages_text(r.before_versions, r.after_versions, attempted),
                    ts(r.started_at),
                    ts(r.finished_at),
                    r.exit_code,
                    r.error,
                    r.ticket_key,
                    "; ".join(f"{p} ({why})" for p, why in sorted((r.left_over or {}).items())),
                ]
            )
            figures.add_host_run(state=r.state, changed=r.before_versions is not None)


async def write_approvals(
    session: AsyncSession, out: ZipOut, period: Period, figures: Figures
) -> None:
    gate_filter = sa.and_(
        Gate.opened_at < period.until,
        sa.or_(Gate.decided_at.is_(None), Gate.decided_at >= period.since),
    )
    gates = await rows(
        session,
        sa.select(
            Gate.id,
            Gate.rollout_id,
            Ring.name,
            Gate.kind,
            Gate.state,
            Gate.patchset_hash,
            Gate.opened_at,
            Gate.decided_at,
            Gate.decided_by,
            Gate.reason,
        )
        .join(Ring, Ring.id == Gate.ring_id)
        .where(gate_filter)
        .order_by(Gate.id),
    )
    votes: dict[int, list[Any]] = {}
    vote_query = (
        sa.select(
            Approval.gate_id,
            Approval.user_id,
            Approval.decision,
            Approval.patchset_hash,
            Approval.reason,
            Approval.source,
            Approval.created_at,
        )
        .join(Gate, Gate.id == Approval.gate_id)
        .where(gate_filter)
        .order_by(Approval.gate_id, Approval.created_at, Approval.id)
    )
    async for v in stream(session, vote_query):
        votes.setdefault(v.gate_id, []).append(v)
    header = [
        "rollout",
        "ring",
        "gate",
        "gate_kind",
        "patchset_hash",
        "who",
        "decision",
        "reason",
        "when",
        "source",
    ]
    with out.csv("approvals.csv", header) as writer:
        for g in gates:
            for v in votes.get(g.id, []):
                writer.row(
                    [
                        g.rollout_id,
                        g.name,
                        g.id,
                        g.kind,
                        v.patchset_hash,
                        v.user_id,
                        v.decision,
                        v.reason,
                        ts(v.created_at),
                        v.source,
                    ]
                )
                figures.votes += 1
            if g.decided_at is not None:
                writer.row(
                    [
                        g.rollout_id,
                        g.name,
                        g.id,
                        g.kind,
                        g.patchset_hash,
                        g.decided_by or "patchgate",
                        f"gate {g.state}",
                        g.reason,
                        ts(g.decided_at),
                        "",
                    ]
                )
            figures.add_gate(kind=g.kind, state=g.state, opened=g.opened_at, decided=g.decided_at)


async def write_exceptions(
    session: AsyncSession, out: ZipOut, period: Period, figures: Figures
) -> None:
    header = [
        "exception",
        "host",
        "package",
        "cve",
        "owner",
        "reason",
        "expiry",
        "ticket",
        "created_by",
        "created",
        "revoked",
        "revoked_by",
        "lapsed",
    ]
    query = (
        sa.select(HostException)
        .where(
            HostException.created_at < period.until,
            sa.func.coalesce(HostException.revoked_at, HostException.expires_at) >= period.since,
        )
        .order_by(HostException.id)
    )
    with out.csv("exceptions.csv", header) as writer:
        for e in await session.scalars(query):
            writer.row(
                [
                    e.id,
                    e.host_name,
                    e.package,
                    e.cve,
                    e.owner,
                    e.reason,
                    ts(e.expires_at),
                    e.ticket_key,
                    e.created_by,
                    ts(e.created_at),
                    ts(e.revoked_at),
                    e.revoked_by,
                    ts(e.lapsed_at),
                ]
            )
            figures.exceptions += 1
