"""Slack or Jira down across a real ``patchgate serve`` crash: the crash harness
(tests/e2e/crash.py, reused, not copied) with an outage laid over it.

The service goes down once the rollout exists; the first ``serve`` SIGKILLs itself at a
step in the middle of the rollout while the service is still down (Slack: after dev's
first batch, its notifications undelivered; Jira: after staging's unhealthy host was
rolled back, its ticket undelivered); the next ``serve`` starts during the outage, and
the service comes back only once that ``serve`` has failed an attempt of its own (for
``hang``, only its client's timeout ends one). The harness then checks its end state:
every host patched exactly once, none skipped, every gate decided once, every Slack
message and Jira ticket delivered exactly once, ``patchgate audit verify`` passes.

The in-process variant with a controllable clock and all four kinds on both backends is
tests/integration/test_outages.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.dbutil import BACKENDS
from tests.e2e.crash import CrashRun, Templates
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.outage import KINDS
from tests.fakes.slack_api import SlackEmulator
from workflows.db import Database, create_database, read_only
from workflows.models import OutboxItem

KILL_AT = {"slack": "batch.done:1", "jira": "host.rollback.result:1"}
TOPIC = {"slack": "notify", "jira": "ticket"}
SLACK_CLIENT_TIMEOUT = 10  # integrations/slack/client.py's default, not configurable
JIRA_TIMEOUT = 2


class OutageRun(CrashRun):
    """A crash run whose ``service`` is down from the rollout's start until ``after``
    seconds past the restart that follows the kill."""

    def __init__(self, url: str, tmp: Path, *, service: str, kind: str) -> None:
        super().__init__(url, tmp, kill_at=KILL_AT[service], record_steps=False)
        self.service, self.kind = service, kind
        timeout = SLACK_CLIENT_TIMEOUT if service == "slack" else JIRA_TIMEOUT
        self.after = timeout if kind == "hang" else 1.0
        self.down: SlackEmulator | JiraEmulator | None = None
        self.came_up: asyncio.Task[None] | None = None
        self.restarted_during_outage = False

    def env(self, slack: SlackEmulator, jira: JiraEmulator, *, kill: bool) -> dict[str, str]:
        return {**super().env(slack, jira, kill=kill), "PATCHGATE_JIRA_TIMEOUT": str(JIRA_TIMEOUT)}

    async def _rollout_id(self, db: Database) -> int | None:
        found = await super()._rollout_id(db)
        if found is not None and self.down is None:
            assert self._slack is not None and self._jira is not None
            self.down = self._slack if self.service == "slack" else self._jira
            await self.down.go_down(self.kind, retry_after=2)
        return found

    def _start_after_kill(self) -> Any:
        assert self.down is not None, "killed before the outage began"
        self.restarted_during_outage = self.down.outage.kind is not None
        proc = super()._start_after_kill()
        self.came_up = asyncio.get_running_loop().create_task(self._come_up_later())
        return proc

    async def _failed_attempts(self, db: Database) -> int:
        async with read_only(db) as session:
            total = await session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(OutboxItem.attempts), 0)).where(
                    OutboxItem.topic == TOPIC[self.service], OutboxItem.last_error.is_not(None)
                )
            )
        return int(total or 0)

    async def _come_up_later(self) -> None:
        """Back once the restarted serve has failed an attempt of its own (for ``hang``,
        only its client's timeout ends one), and at least ``after`` seconds on."""
        assert self.down is not None
        db = create_database(self.url)
        try:
            before = await self._failed_attempts(db)
            loop = asyncio.get_running_loop()
            earliest, deadline = loop.time() + self.after, loop.time() + 60
            while loop.time() < deadline:
                await asyncio.sleep(0.2)
                if loop.time() >= earliest and await self._failed_attempts(db) > before:
                    break
            else:
                raise AssertionError("the restarted serve never tried the down service")
        finally:
            await db.dispose()
            await self.down.come_up()


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    found = Templates(tmp_path_factory.mktemp("outage-templates"))
    yield found
    found.close()


def _cases() -> list[tuple[str, str, str]]:
    """Each service x kind once, SQLite and PostgreSQL alternately."""
    cases = [(service, kind) for service in ("slack", "jira") for kind in KINDS]
    return [(BACKENDS[i % 2], service, kind) for i, (service, kind) in enumerate(cases)]


@pytest.mark.parametrize(("backend", "service", "kind"), _cases())
async def test_a_serve_killed_during_an_outage_loses_and_repeats_nothing(
    templates: Templates,
    tmp_path: Path,
    backend: str,
    service: str,
    kind: str,
) -> None:
    with templates.fresh(backend, tmp_path) as url:
        run = OutageRun(url, tmp_path, service=service, kind=kind)
        await run.run()  # the harness's end-state checks
        assert run.outcome.kills == 1, f"{KILL_AT[service]} was never reached"
        assert run.restarted_during_outage, "the second serve started while the service was down"
        assert run.came_up is not None and run.came_up.done()
        run.came_up.result()  # the restarted serve met the outage
        db = create_database(url)
        try:
            async with read_only(db) as session:
                attempts = list(
                    await session.scalars(
                        sa.select(OutboxItem.attempts).where(OutboxItem.topic == TOPIC[service])
                    )
                )
        finally:
            await db.dispose()
    assert attempts and max(attempts) >= 2, ("the outage was never met", attempts)
