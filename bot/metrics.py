"""Prometheus metrics for ``/metrics``, on a per-app CollectorRegistry (never the global one).

prometheus-client collectors are synchronous, so everything is read from the database
by :meth:`Metrics.refresh` (a few aggregate queries), which a background task of the
server runs every ``PATCHGATE_METRICS_INTERVAL`` seconds (``bot.metrics_snapshot``); a
scrape answers the last exposition. Every known state is exported, zeros included, so dashboards and
alerts see a series from the start (``patchgate_outbox_rows{state="dead"}`` is the
dead-letter alert).

Series:

- ``patchgate_rollouts{state}``, ``patchgate_host_runs{state}`` (a host run's state is
  its result once it ends: healthy, failed, rolled_back, …), ``patchgate_gates_waiting
  {kind}`` (open gates: approval gates wait for people, auto gates for their soak).
- ``patchgate_outbox_rows{state}`` (pending = the backlog, dead = dead letters) and
  ``patchgate_outbox_oldest_pending_age_seconds`` (how far behind delivery is).
- ``patchgate_time_to_patch_seconds{severity}``: a histogram over every security fix
  patched so far, with the evidence bundles' definition (``workflows.reports``):
  from when the fix became available (the advisory's publication if known, else the
  first assessment that found it on the host) to the end of the first healthy host run
  after its detection that left the package at the fixed version or later. It is built
  from the database (a custom collector), recomputed only when fixes or healthy runs
  changed since the last scrape.
- ``patchgate_engine_last_tick_timestamp_seconds``: when this process's engine (the
  leader's scheduler loop) last finished a tick without error (0: never).
- ``patchgate_leader`` / ``patchgate_leader_epoch`` (this process) and
  ``patchgate_leader_heartbeat_timestamp_seconds`` (the lock row's last heartbeat, as
  any replica sees it).
- ``patchgate_metrics_refreshed_timestamp_seconds``: when the snapshot a scrape reads was
  taken.
- ``patchgate_db_write_wait_max_seconds`` and ``patchgate_db_write_waits_over_1s``: the
  longest wait of this process's writers for the database to begin a transaction, and
  how many waited over a second (``workflows.db.WriteWaits``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession

from bot.zone_metrics import ZoneCollector, ZoneSource
from workflows import outbox
from workflows.db import Database, in_parts_of, read_only
from workflows.models import FixDetection, Gate, Host, HostRun, LeaderState, OutboxItem, Rollout
from workflows.states import GateState, HostState, RolloutState

CONTENT_TYPE = CONTENT_TYPE_LATEST
HOUR, DAY = 3600.0, 86400.0
# Upper bounds (seconds): SLAs are counted in days (critical 7, high 30, …).
TTP_BUCKETS = (
    HOUR,
    6 * HOUR,
    DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    60 * DAY,
    90 * DAY,
    180 * DAY,
    365 * DAY,
)
SEVERITIES = ("critical", "high", "medium", "low", "unknown")
GATE_KINDS = ("approval", "auto")

# (package manager or None, version a, version b) -> <0, 0, >0; raises ValueError
VersionCompare = Callable[[str | None, str, str], int]


def package_compare(manager: str | None, a: str, b: str) -> int:
    """Compare two versions with the host's package manager's rules (ValueError if unknown)."""
    from integrations.packages.versions import compare

    if manager not in ("apt", "dnf", "yum", "zypper"):
        raise ValueError(f"no version rules for package manager {manager!r}")
    return compare(manager, a, b)


async def _counts(
    session: AsyncSession, column: sa.orm.InstrumentedAttribute[str], states: list[str]
) -> dict[str, int]:
    result = dict.fromkeys(states, 0)
    rows = await session.execute(sa.select(column, sa.func.count()).group_by(column))
    for state, n in rows:
        result[str(state)] = int(n)
    return result


def _severity(value: str | None) -> str:
    key = (value or "unknown").lower()
    return key if key in SEVERITIES else "unknown"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class TimeToPatch:
    """The time-to-patch histogram per severity, as last computed from the database.

    Nothing is read again while the fixes and the healthy runs are unchanged (a few
    aggregates say so). When only runs changed, only runs that finished since the last
    computation (less ``RESCAN``, for runs committed late) are looked at: a fix's first
    patch does not move once found. A change in the fixes recomputes everything.
    """

    RESCAN = dt.timedelta(hours=1)

    def __init__(self, compare: VersionCompare | None = None) -> None:
        self.compare = compare
        self.key: tuple[Any, ...] | None = None
        self.observations: dict[str, list[float]] = {s: [] for s in SEVERITIES}
        self._patched: dict[int, dt.datetime] = {}  # fix id -> its first patch
        self._available: dict[int, tuple[str, dt.datetime]] = {}  # fix id -> severity, since
        self._watermark: dt.datetime | None = None  # the latest finished run seen

    async def refresh(self, session: AsyncSession) -> None:
        healthy = HostRun.state == HostState.HEALTHY.value
        fix_key = tuple(
            (
                await session.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.max(FixDetection.id),
                        sa.func.max(FixDetection.published),
                    )
                )
            ).one()
        )
        run_count, last_finished = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.max(HostRun.finished_at)).where(healthy)
            )
        ).one()
        key = (*fix_key, run_count, last_finished)
        if key == self.key:
            return
        full = self.key is None or self.key[:3] != fix_key or self._watermark is None
        since = None if full or self._watermark is None else self._watermark - self.RESCAN
        found = await self._first_patches(session, since=since)
        if full:
            self._patched = found
            since_when: dict[int, tuple[str, dt.datetime]] = {}
            fixes = sa.select(
                FixDetection.id,
                FixDetection.severity,
                FixDetection.published,
                FixDetection.first_detected_at,
            )
            async for part in in_parts_of(session, fixes, scalars=False):  # a fleet's fixes
                for fix in part:
                    since = fix.published or fix.first_detected_at
                    since_when[fix.id] = (_severity(fix.severity), _aware(since))
            self._available = since_when
        else:
            for fix_id, when in found.items():
                known = self._patched.get(fix_id)
                self._patched[fix_id] = when if known is None else min(known, when)
        observations: dict[str, list[float]] = {s: [] for s in SEVERITIES}
        for fix_id, when in self._patched.items():
            severity, available = self._available.get(fix_id, ("unknown", when))
            observations[severity].append(max(0.0, (when - available).total_seconds()))
        self.observations, self.key = observations, key
        self._watermark = None if last_finished is None else _aware(last_finished)

    async def _first_patches(
        self, session: AsyncSession, *, since: dt.datetime | None
    ) -> dict[int, dt.datetime]:
        """Fix id -> the end of the first healthy run (finished at or after ``since``) that
        left the package at the fixed version or later."""
        # The version each run left the fix's package at is read in the database; only
        # runs that left it at another version than the fixed one come back row by row
        # (to be compared with the package manager's rules here).
        installed = _json_text(session, HostRun.after_versions, FixDetection.package)
        conditions = [
            HostRun.host_name == FixDetection.host,
            HostRun.state == HostState.HEALTHY.value,
            HostRun.finished_at >= FixDetection.first_detected_at,
        ]
        if since is not None:
            conditions.append(HostRun.finished_at >= since)
        pairs = (
            sa.select(FixDetection.id)
            .join(HostRun, sa.and_(*conditions))
            .where(installed.is_not(None))
        )
        patched: dict[int, dt.datetime] = {}
        same = pairs.with_only_columns(FixDetection.id, sa.func.min(HostRun.finished_at))
        same = same.where(installed == FixDetection.candidate).group_by(FixDetection.id)
        for fix_id, first in await session.execute(same):
            if first is not None:
                patched[fix_id] = _aware(first)
        if self.compare is None:
            return patched
        other = pairs.with_only_columns(
            FixDetection.id,
            FixDetection.candidate,
            Host.package_manager,
            installed.label("installed"),
            HostRun.finished_at,
        ).outerjoin(Host, Host.name == FixDetection.host)
        for run in await session.execute(other.where(installed != FixDetection.candidate)):
            finished = _aware(run.finished_at)
            if finished < patched.get(run.id, finished + dt.timedelta(1)) and self._later(
                run.package_manager, run.installed, run.candidate
            ):
                patched[run.id] = finished
        return patched

    def _later(self, manager: str | None, installed: str, candidate: str) -> bool:
        assert self.compare is not None
        try:
            return self.compare(manager, installed, candidate) >= 0
        except ValueError:
            return False


def _json_text(session: AsyncSession, column: Any, key: Any) -> sa.ColumnElement[str]:
    """``column[key]`` as text (NULL when absent), for a JSON column and a key column."""
    if session.get_bind().dialect.name == "postgresql":
        return column.op("->>", return_type=sa.String())(key)  # type: ignore[no-any-return]
    path = sa.literal('$."', sa.String()) + key + sa.literal('"', sa.String())
    return sa.func.json_extract(column, path, type_=sa.String())


class _HistogramCollector(Collector):
    def __init__(self, source: TimeToPatch) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return [self._family()]

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "patchgate_time_to_patch_seconds",
            "Seconds from a security fix's availability (advisory publication, else first "
            "detection on the host) to the host running it, per severity.",
            labels=["severity"],
        )

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for severity, values in self.source.observations.items():
            buckets: list[tuple[str, float]] = [
                (str(bound), float(sum(1 for v in values if v <= bound))) for bound in TTP_BUCKETS
            ]
            buckets.append(("+Inf", float(len(values))))
            family.add_metric([severity], buckets, sum_value=sum(values))
        yield family


class Metrics:
    """The gauges of one ``serve`` process and the registry that holds them.

    ``last_tick`` returns when this process's engine last finished a tick (Unix seconds)
    or None; ``compare`` compares package versions (``integrations.packages.versions``)
    so a host left at a later version than the fix counts as patched.
    """

    def __init__(
        self,
        *,
        last_tick: Callable[[], float | None] | None = None,
        compare: VersionCompare | None = None,
        zones: ZoneSource | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if zones is not None:
            self.registry.register(ZoneCollector(zones))
        self._last_tick = last_tick or (lambda: None)
        self.rollouts = Gauge(
            "patchgate_rollouts", "Rollouts by state.", ["state"], registry=self.registry
        )
        self.host_runs = Gauge(
            "patchgate_host_runs",
            "Host runs (one host in one rollout) by state; an ended run's state is its result.",
            ["state"],
            registry=self.registry,
        )
        self.gates_waiting = Gauge(
            "patchgate_gates_waiting",
            "Open gates by kind (approval: waiting for approvers; auto: soaking).",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_rows = Gauge(
            "patchgate_outbox_rows",
            "Outbox rows by state; state=pending is the backlog, state=dead the dead letters.",
            ["state"],
            registry=self.registry,
        )
        self.outbox_oldest = Gauge(
            "patchgate_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row (0 when none is pending).",
            registry=self.registry,
        )
        self.last_tick = Gauge(
            "patchgate_engine_last_tick_timestamp_seconds",
            "When this process's engine last finished a tick without error (0: never).",
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
        self.leader_heartbeat = Gauge(
            "patchgate_leader_heartbeat_timestamp_seconds",
            "The leader lock row's last heartbeat (any replica's view; 0: none yet).",
            registry=self.registry,
        )
        self.refreshed = Gauge(
            "patchgate_metrics_refreshed_timestamp_seconds",
            "When these metrics were last read from the database (a background refresh).",
            registry=self.registry,
        )
        self.write_wait = Gauge(
            "patchgate_db_write_wait_max_seconds",
            "The longest any writer of this process waited for the database to begin its "
            "transaction (SQLite's write turn, a pool connection), since the process started.",
            registry=self.registry,
        )
        self.write_waits_over_1s = Gauge(
            "patchgate_db_write_waits_over_1s",
            "Writers of this process that waited over a second to begin, since it started.",
            registry=self.registry,
        )
        self.time_to_patch = TimeToPatch(compare)
        self.registry.register(_HistogramCollector(self.time_to_patch))

    async def refresh(
        self, db: Database, *, leader: bool, epoch: int | None, now: dt.datetime | None = None
    ) -> None:
        """Read the counts from the database into the gauges."""
        now = now or dt.datetime.now(dt.UTC)
        async with read_only(db) as session:
            rollouts = await _counts(session, Rollout.state, [s.value for s in RolloutState])
            hosts = await _counts(session, HostRun.state, [s.value for s in HostState])
            rows = await outbox.counts(session)
            gates = dict.fromkeys(GATE_KINDS, 0)
            for kind, n in await session.execute(
                sa.select(Gate.kind, sa.func.count())
                .where(Gate.state == GateState.OPEN.value)
                .group_by(Gate.kind)
            ):
                gates[str(kind)] = int(n)
            oldest = await session.scalar(
                sa.select(sa.func.min(OutboxItem.created_at)).where(OutboxItem.state == "pending")
            )
            heartbeat = await session.scalar(sa.select(sa.func.max(LeaderState.heartbeat_at)))
            await self.time_to_patch.refresh(session)
        _set_all(self.rollouts, rollouts)
        _set_all(self.host_runs, hosts)
        _set_all(self.outbox_rows, rows)
        _set_all(self.gates_waiting, gates, label="kind")
        self.outbox_oldest.set(
            0 if oldest is None else max(0.0, (now - _aware(oldest)).total_seconds())
        )
        self.leader_heartbeat.set(0 if heartbeat is None else _aware(heartbeat).timestamp())
        self.last_tick.set(self._last_tick() or 0)
        self.leader.set(1 if leader else 0)
        self.leader_epoch.set(epoch or 0)
        self.write_wait.set(db.write_waits.longest)
        self.write_waits_over_1s.set(db.write_waits.over_1s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _set_all(gauge: Gauge, values: Mapping[str, int], *, label: str = "state") -> None:
    for name, n in values.items():
        gauge.labels(**{label: name}).set(n)
