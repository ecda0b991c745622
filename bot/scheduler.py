"""APScheduler wiring: wake the leader's engine at the times the database says.

The database is the truth (:func:`workflows.schedule.wake_times` collects every due
time: window openings, one-off runs, reminders, gate expiries and soak ends, exception
expiries, freeze ends, window ends). Here APScheduler 3's ``AsyncIOScheduler`` holds
one in-memory ``date`` job per upcoming time, and each job only calls the engine's
``wake()``: the engine's tick does the work, and it checks due times on every tick
anyway, so a lost wake-up costs at most one idle interval.

The jobs are rebuilt from the database when the scheduler starts (at every leader
takeover: ``serve`` builds a new scheduler each time it leads), after each engine tick
that changed due times (:func:`request_rebuild`), and every ``rebuild_every`` seconds.
No job store, no pickled jobs: nothing here outlives the process or its leadership.

:func:`register_refresh_jobs` adds the scheduled discovery and assessment of the
inventory (bot/refresh.py), interval jobs at the cadence the settings give.

Times are clock times (the :class:`~workflows.ports.Clock` port, which tests drive);
APScheduler runs on real time, so a due time ``t`` becomes a job at
``real now + (t - clock now)``, recomputed at each rebuild.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.refresh import Kind, RefreshDeps, refresh
from workflows.db import Database, read_only
from workflows.ports import Clock
from workflows.schedule import wake_times

log = logging.getLogger("patchgate.scheduler")

WAKE_PREFIX = "wake:"
REBUILD_JOB = "rebuild"
REBUILD_SOON_JOB = "rebuild-soon"
REFRESH_FIRST_DELAY = 60.0  # at most this long after a takeover before the first refresh


@dataclass
class SchedulerDeps:
    db: Database
    clock: Clock
    wake: Callable[[], None]  # the engine's wake(); called on the event loop
    rebuild_every: float = 60.0  # seconds
    max_jobs: int = 200  # the nearest times; later ones are picked up by later rebuilds


def build_scheduler() -> AsyncIOScheduler:
    """A scheduler with the in-memory job store only; start it on the running loop."""
    # APScheduler logs every added, removed and run job at INFO: only PatchGate's own
    # DEBUG level shows them.
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if debug else logging.WARNING)
    return AsyncIOScheduler(
        timezone=dt.UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )


async def _wake(deps: SchedulerDeps) -> None:
    # A coroutine job runs on the event loop (a plain function would run in a thread).
    deps.wake()


async def rebuild(scheduler: AsyncIOScheduler, deps: SchedulerDeps) -> int:
    """Replace the wake jobs with one per upcoming due time; how many there are now."""
    async with read_only(deps.db) as session:
        times = await wake_times(session, now=deps.clock.now())
    clock_now, real_now = deps.clock.now(), dt.datetime.now(dt.UTC)
    for job in scheduler.get_jobs():
        if job.id.startswith(WAKE_PREFIX):
            job.remove()
    for due in times[: deps.max_jobs]:
        scheduler.add_job(
            _wake,
            "date",
            args=[deps],
            run_date=real_now + (due - clock_now),
            id=f"{WAKE_PREFIX}{due.isoformat()}",
            replace_existing=True,
        )
    log.debug("wake jobs rebuilt: %d upcoming due times", len(times))
    return min(len(times), deps.max_jobs)


async def _rebuild_logged(scheduler: AsyncIOScheduler, deps: SchedulerDeps) -> None:
    try:
        await rebuild(scheduler, deps)
    except Exception:  # the engine's tick still checks due times; try again next time
        log.exception("could not rebuild the wake jobs; the engine tick still checks due times")


def request_rebuild(scheduler: AsyncIOScheduler, deps: SchedulerDeps) -> None:
    """Rebuild soon (due times changed); repeated calls before it runs are one rebuild."""
    if not scheduler.running or scheduler.get_job(REBUILD_SOON_JOB) is not None:
        return
    scheduler.add_job(
        _rebuild_logged,
        "date",
        args=[scheduler, deps],
        run_date=dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=200),
        id=REBUILD_SOON_JOB,
        replace_existing=True,
    )


def register_jobs(scheduler: AsyncIOScheduler, deps: SchedulerDeps) -> None:
    """The rebuild job: at once (on start, i.e. on takeover), then every rebuild_every s."""
    scheduler.add_job(
        _rebuild_logged,
        "interval",
        args=[scheduler, deps],
        seconds=deps.rebuild_every,
        next_run_time=dt.datetime.now(dt.UTC),
        id=REBUILD_JOB,
        replace_existing=True,
    )


async def _refresh_logged(deps: RefreshDeps, kind: Kind, interval: float) -> None:
    try:
        await refresh(deps, kind, interval=interval)
    except Exception:  # a loop that must survive: the next run tries again
        log.exception("scheduled %s failed; it runs again in %gs", kind, interval)


def register_refresh_jobs(scheduler: AsyncIOScheduler, deps: RefreshDeps) -> list[str]:
    """Discovery and assessment every PATCHGATE_DISCOVERY_INTERVAL / _ASSESS_INTERVAL
    seconds (0: not scheduled); the ids of the jobs added."""
    added = []
    kinds: tuple[tuple[Kind, float], ...] = (
        ("discovery", deps.settings.discovery_interval),
        ("assessment", deps.settings.assess_interval),
    )
    for kind, interval in kinds:
        if interval <= 0:
            continue
        delay = min(REFRESH_FIRST_DELAY, interval)
        scheduler.add_job(
            _refresh_logged,
            "interval",
            args=[deps, kind, interval],
            seconds=interval,
            next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay),
            id=f"refresh:{kind}",
            replace_existing=True,
        )
        added.append(f"refresh:{kind}")
    return added
