"""Patch windows with a real ``patchgate serve``, its clock driven through the test-only
file clock (PATCHGATE_TEST_CLOCK_FILE).

A nightly plan (02:00 Europe/Berlin for 2 hours, i.e. 01:00-03:00 UTC in winter):

* before the window nothing starts; once the clock is inside it, the rollout starts
  and runs to the end;
* then a 3-hour outage covering the next night's window: ``serve`` is stopped, the clock
  moves past the window, ``serve`` starts again: no rollout starts late, and the outbox
  holds the "window missed" notification for the plan's channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.dbutil import fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, migrate, wait_for
from workflows.db import create_database, read_only
from workflows.models import DueTime, OutboxItem, Rollout
from workflows.notify import TOPIC, notification_kind, parse_notification

UTC = dt.UTC
NIGHTLY = """\
name: nightly
schedule: {cron: "0 2 * * *", timezone: Europe/Berlin, duration: 2h}
packages: {include: ["*"]}
reboot: never
health_checks:
  - {name: ssh port open, type: tcp, port: 22}
rings:
  - {name: dev, hosts: group:dev, batch: 100%}
slack: {channel: C0NIGHTLY1}
"""
NIGHT_1 = dt.datetime(2026, 3, 10, 1, 0, tzinfo=UTC)  # 02:00 Berlin (CET, UTC+1)
NIGHT_2 = NIGHT_1 + dt.timedelta(days=1)
NIGHT_3 = NIGHT_2 + dt.timedelta(days=1)


def set_clock(path: Path, when: dt.datetime) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(when.isoformat())
    tmp.replace(path)


def rows(url: str, statement: Any) -> list[Any]:
    async def go() -> list[Any]:
        db = create_database(url)
        try:
            async with read_only(db) as session:
                return list(await session.scalars(statement))
        finally:
            await db.dispose()

    return asyncio.run(go())


def pending_windows(url: str) -> list[dt.datetime]:
    due = rows(url, sa.select(DueTime).where(DueTime.kind == "window", DueTime.state == "pending"))
    return [d.due_at.astimezone(UTC) for d in due]


def test_a_window_starts_its_rollout_and_a_window_missed_in_an_outage_never_runs_late(
    tmp_path: Path,
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "nightly.yml").write_text(NIGHTLY)
    clock = tmp_path / "clock"
    set_clock(clock, NIGHT_1 - dt.timedelta(minutes=30))
    with fresh_database_url("sqlite", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(
            url,
            PATCHGATE_PLANS_DIR=str(plans),
            PATCHGATE_TEST_CLOCK_FILE=str(clock),
            PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"),
        )
        with ServeProcess(env, cwd=tmp_path, name="night1") as serve:
            serve.wait_leader(timeout=45)
            # At takeover the leader loads the plan and writes its next window.
            wait_for("the window row", lambda: pending_windows(url) == [NIGHT_1], timeout=15)
            time.sleep(1.0)  # a few ticks (0.2 s) before the window: nothing starts
            assert rows(url, sa.select(Rollout.id)) == []

            set_clock(clock, NIGHT_1 + dt.timedelta(minutes=1))

            def finished() -> Rollout | None:
                found = rows(url, sa.select(Rollout))
                return found[0] if found and found[0].state == "succeeded" else None

            try:
                rollout = wait_for("the rollout to succeed", finished, timeout=60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{serve.log()}") from None
            assert rollout.source == "schedule"
            assert rollout.window_end.astimezone(UTC) == NIGHT_1 + dt.timedelta(hours=2)
            assert pending_windows(url) == [NIGHT_2]

            # The outage: stopped half an hour before the next window...
            set_clock(clock, NIGHT_2 - dt.timedelta(minutes=30))
            assert serve.terminate(timeout=45) == 0

        # ...and back three hours later, after the window (01:00-03:00 UTC) has closed.
        set_clock(clock, NIGHT_2 + dt.timedelta(hours=2, minutes=30))
        with ServeProcess(env, cwd=tmp_path, name="night2") as serve:
            serve.wait_leader(timeout=45)

            def missed() -> list[dict[str, Any]] | None:
                notes = [
                    o.payload
                    for o in rows(url, sa.select(OutboxItem))
                    if o.topic == TOPIC
                    and notification_kind(parse_notification(o.payload)) == "schedule.window_missed"
                ]
                return notes or None

            [note] = wait_for("the window-missed notification", missed, timeout=15)
            time.sleep(1.0)  # several more ticks: still nothing runs late
            assert len(rows(url, sa.select(Rollout.id))) == 1  # night 1's only
            assert note["channel"] == "C0NIGHTLY1"
            assert note["text"].startswith(
                "Window of plan nightly opening 2026-03-11 02:00 Europe/Berlin (01:00 UTC) was "
                "missed: PatchGate was not running in time. Nothing runs late; the next window "
                "opens 2026-03-12 02:00 Europe/Berlin (01:00 UTC)."
            )
            assert pending_windows(url) == [NIGHT_3]
            [window] = rows(url, sa.select(DueTime).where(DueTime.due_at == NIGHT_2))
            assert (window.state, window.result) == ("done", "missed")
            assert serve.terminate(timeout=45) == 0
