"""Issue 16 on the real ``patchgate serve``: a rollout started during a change freeze keeps
its whole Slack trail. The leader's freeze note is queued before the rollout's parent
message; once the freeze is lifted the parent is posted, then the notes, then the rest of
the thread, and no outbox row goes dead (SQLite and PostgreSQL, Slack emulator)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import OPERATOR, ServeProcess, base_env, migrate
from tests.e2e.test_serve_headless import drive_to_the_end, start_weekly
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN
from tests.slack.conftest import slack_api as slack_api  # the fixture
from workflows import schedule as schedules
from workflows.db import Database, create_database, read_only, unit_of_work
from workflows.gates import Actor
from workflows.models import Freeze, OutboxItem, Rollout

CHANNEL = "C0123456789"  # the example plan's
OPERATORS = frozenset({OPERATOR})


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


async def rows(db: Database) -> list[OutboxItem]:
    async with read_only(db) as session:
        return list(await session.scalars(sa.select(OutboxItem).order_by(OutboxItem.id)))


async def until(
    what: str, probe: Callable[[], Awaitable[bool]], serve: ServeProcess, within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {within:g}s\n{serve.log()}")


async def test_serve_delivers_the_whole_trail_of_a_rollout_started_during_a_freeze(
    database_url: str, tmp_path: Path, slack_api: SlackEmulator
) -> None:
    slack_api.channels.add(CHANNEL)
    slack_api.usergroups["S0789KLMNO"] = ["U0456FGHIJ"]
    await asyncio.to_thread(migrate, database_url, tmp_path)
    env = base_env(
        database_url,
        PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"),
        PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
        PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
        PATCHGATE_SLACK_API_URL=slack_api.url,
    )
    db = create_database(database_url)
    try:
        # Freeze, then start, before serve runs: its first tick holds the rollout before
        # any step (a start committed in the middle of a tick may be stepped once first).
        async with unit_of_work(db) as session:
            frozen = await schedules.freeze(
                session, actor=Actor(OPERATOR), operators=OPERATORS, reason="incident 42",
                until=None, now=dt.datetime.now(dt.UTC),
            )  # fmt: skip
        assert isinstance(frozen, Freeze)
        rollout_id = await start_weekly(db)
        with ServeProcess(env, cwd=tmp_path) as serve:
            await asyncio.to_thread(serve.wait_ready)
            await asyncio.to_thread(serve.wait_leader, timeout=15)

            async def held() -> bool:
                async with read_only(db) as session:
                    rollout = await session.get(Rollout, rollout_id)
                return rollout is not None and rollout.hold_reason is not None

            await until("the rollout held by the freeze", held, serve)
            await asyncio.sleep(2)  # a few outbox passes while the freeze is on
            assert [r.state for r in await rows(db)] == ["pending"], serve.log()

            async with unit_of_work(db) as session:
                lifted = await schedules.unfreeze(
                    session, actor=Actor(OPERATOR), operators=OPERATORS,
                    now=dt.datetime.now(dt.UTC),
                )  # fmt: skip
            assert isinstance(lifted, list)
            assert await drive_to_the_end(db, rollout_id, serve) == "succeeded"

            async def settled() -> bool:
                return all(r.state != "pending" for r in await rows(db) if r.topic == "notify")

            await until("every notification settled", settled, serve)
            final = await rows(db)
            assert final[0].key.startswith(f"rollout:{rollout_id}:freeze:")
            dead = [(r.key, r.last_error) for r in final if r.state == "dead"]
            assert dead == [], serve.log()
            [parent] = [m for m in slack_api.posted(CHANNEL) if m["thread_ts"] is None]
            thread = [
                m["text"] for m in slack_api.posted(CHANNEL) if m["thread_ts"] == parent["ts"]
            ]
            assert thread[0].startswith("Change freeze (incident 42)"), thread[:3]
            assert thread[1] == "Change freeze lifted: continuing", thread[:3]
            assert len(thread) > 5
            assert await asyncio.to_thread(serve.terminate, timeout=45) == 0
    finally:
        await db.dispose()
