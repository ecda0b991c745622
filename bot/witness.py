"""The leader's audit witness job: the chain's head, signed with PATCHGATE_SIGNING_KEY,
appended to PATCHGATE_AUDIT_WITNESS_FILE (JSON Lines the operator ships elsewhere) when a
rollout has ended since the last witnessed head, and at least every
PATCHGATE_AUDIT_WITNESS_INTERVAL seconds while the head moves. The job looks every
minute (or every interval, if shorter); the work is :func:`workflows.audit.witness_if_due`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.settings import Settings
from workflows import audit
from workflows.db import Database
from workflows.errors import ConfigError
from workflows.ports import Clock

log = logging.getLogger("patchgate.witness")

WITNESS_JOB = "audit-witness"
LOOK_EVERY = 60.0  # seconds: how soon after a rollout's end its head is witnessed


@dataclass(frozen=True)
class WitnessDeps:
    db: Database
    clock: Clock
    signer: audit.Signer
    path: Path
    interval: dt.timedelta


def check_audit_settings(settings: Settings) -> None:
    """At ``serve`` start: PostgreSQL needs an audit key unless PATCHGATE_AUDIT_UNKEYED
    opts out, the witness needs a signing key, a signing key must load (ConfigError),
    and an unkeyed chain (the opt-out) is said loudly."""
    if settings.audit_key_missing:
        raise ConfigError([audit.KEY_REQUIRED])
    if settings.audit_witness_file is not None and settings.signing_key is None:
        raise ConfigError(
            [
                "PATCHGATE_SIGNING_KEY: required with PATCHGATE_AUDIT_WITNESS_FILE "
                "(witnessed heads are signed; `patchgate audit keygen` makes a key)"
            ]
        )
    if settings.signing_key is not None:
        audit.load_signer(settings.signing_key)  # a bad key stops serve now, not a report
    if settings.audit_keys is None:
        log.warning(
            "PATCHGATE_AUDIT_UNKEYED=true and no PATCHGATE_AUDIT_KEY: audit events are "
            "appended UNKEYED, so a database writer could rewrite them unseen "
            "(see docs/reliability.md)"
        )


def witness_deps(settings: Settings, db: Database, clock: Clock) -> WitnessDeps | None:
    if settings.audit_witness_file is None or settings.signing_key is None:
        return None
    return WitnessDeps(
        db=db,
        clock=clock,
        signer=audit.load_signer(settings.signing_key),
        path=settings.audit_witness_file.expanduser(),
        interval=dt.timedelta(seconds=settings.audit_witness_interval),
    )


async def witness_once(deps: WitnessDeps) -> None:
    try:
        record = await audit.witness_if_due(
            deps.db,
            signer=deps.signer,
            path=deps.path,
            now=deps.clock.now(),
            interval=deps.interval,
        )
    except Exception:  # a job must survive; the next look tries again
        log.exception("could not witness the audit head into %s", deps.path)
        return
    if record is not None:
        log.info("audit head seq %s witnessed into %s", record["seq"], deps.path)


def register_witness(scheduler: AsyncIOScheduler, deps: WitnessDeps | None) -> None:
    """The witness job (when configured): at once on takeover, then every minute."""
    if deps is None:
        return
    scheduler.add_job(
        witness_once,
        "interval",
        args=[deps],
        seconds=min(LOOK_EVERY, deps.interval.total_seconds()),
        next_run_time=dt.datetime.now(dt.UTC),
        id=WITNESS_JOB,
        replace_existing=True,
    )
