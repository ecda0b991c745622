"""Prometheus metrics for ``/metrics``, on a per-app CollectorRegistry (never the global one).

prometheus-client collectors are synchronous, so the gauges are refreshed from the
database by the ``/metrics`` handler (:meth:`Metrics.render`) just before exposition.
Every known state is exported, zeros included, so dashboards and alerts see a series
from the start (``patchgate_outbox_rows{state="dead"}`` is the dead-letter alert).
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import outbox
from workflows.db import Database, read_only
from workflows.models import HostRun, Rollout
from workflows.states import HostState, RolloutState

CONTENT_TYPE = CONTENT_TYPE_LATEST


async def _counts(
    session: AsyncSession, column: sa.orm.InstrumentedAttribute[str], states: list[str]
) -> dict[str, int]:
    result = dict.fromkeys(states, 0)
    rows = await session.execute(sa.select(column, sa.func.count()).group_by(column))
    for state, n in rows:
        result[str(state)] = int(n)
    return result


class Metrics:
    """The gauges of one ``serve`` process and the registry that holds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rollouts = Gauge(
            "patchgate_rollouts", "Rollouts by state.", ["state"], registry=self.registry
        )
        self.host_runs = Gauge(
            "patchgate_host_runs",
            "Host runs (one host in one rollout) by state.",
            ["state"],
            registry=self.registry,
        )
        self.outbox_rows = Gauge(
            "patchgate_outbox_rows",
            "Outbox rows by state; state=dead are dead letters.",
            ["state"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "patchgate_leader",
            "1 if this process holds the leader lock, else 0.",
            registry=self.registry,
        )
        self.leader_epoch = Gauge(
            "patchgate_leader_epoch",
            "The leader epoch this process holds (0 when not leading).",
            registry=self.registry,
        )

    async def refresh(self, db: Database, *, leader: bool, epoch: int | None) -> None:
        """Read the counts from the database into the gauges."""
        async with read_only(db) as session:
            rollouts = await _counts(session, Rollout.state, [s.value for s in RolloutState])
            hosts = await _counts(session, HostRun.state, [s.value for s in HostState])
            rows = await outbox.counts(session)
        for state, n in rollouts.items():
            self.rollouts.labels(state=state).set(n)
        for state, n in hosts.items():
            self.host_runs.labels(state=state).set(n)
        for state, n in rows.items():
            self.outbox_rows.labels(state=state).set(n)
        self.leader.set(1 if leader else 0)
        self.leader_epoch.set(epoch or 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
