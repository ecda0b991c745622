"""The composition root: the one place that builds concrete adapters from Settings.

Nothing here runs at import time. ``patchgate serve`` calls :func:`build_runtime` once
(from ``main()``'s Settings) and hands the pieces to the engine, the outbox worker and
the HTTP server. :func:`create_app` is where the Slack issue adds the Bolt ``AsyncApp``
and the Slack deliverer; until then it returns the headless runtime, in which
notifications are logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.settings import Settings
from integrations.inventory import FileInventory
from integrations.logging_notifier import LoggingDeliverer
from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
from workflows.clock import FileClock, SystemClock
from workflows.db import Database, create_database
from workflows.errors import ConfigError
from workflows.notifications import TOPIC as NOTIFY_TOPIC
from workflows.outbox import Deliverer
from workflows.ports import Clock, Executor, HealthChecker, Inventory


@dataclass
class Runtime:
    """Every adapter ``serve`` needs, built from one Settings object."""

    settings: Settings
    db: Database
    executor: Executor
    health: HealthChecker
    inventory: Inventory
    clock: Clock
    deliverers: Mapping[str, Deliverer]

    async def close(self) -> None:
        await self.db.dispose()


def build_executor(settings: Settings) -> tuple[Executor, HealthChecker]:
    """The executor and health checker ``PATCHGATE_EXECUTOR`` names.

    The SSH executor is the next issue: it plugs in here, and only here.
    """
    if settings.executor == "recording":
        executor = RecordingExecutor.demo(state_file=settings.recording_state_file)
        return executor, RecordingHealthChecker(executor)
    raise ConfigError(
        [
            "PATCHGATE_EXECUTOR: the SSH executor is not available in this build yet; "
            "use PATCHGATE_EXECUTOR=recording for a simulated fleet"
        ]
    )


def build_clock(settings: Settings) -> Clock:
    if settings.test_clock_file is not None:
        return FileClock(settings.test_clock_file)
    return SystemClock()


def build_deliverers(settings: Settings) -> dict[str, Deliverer]:
    """Outbox deliverers by topic. Headless (no Slack): notifications go to the log.

    The Slack issue registers the Slack deliverer for ``notify`` when a bot token is set.
    """
    return {NOTIFY_TOPIC: LoggingDeliverer()}


def build_ticket_deliverers(settings: Settings) -> dict[str, Deliverer]:
    """The Jira deliverer for topic ``ticket`` when PATCHGATE_JIRA_URL is set. Building it
    calls nothing: the client connects lazily, so a Jira outage never stops ``serve``."""
    if not settings.jira_url:
        return {}
    settings.require("jira_token")
    from integrations.jira import build_ticketer
    from workflows.tickets import TOPIC as TICKET_TOPIC

    assert settings.jira_token is not None
    return {
        TICKET_TOPIC: build_ticketer(
            url=settings.jira_url,
            token=settings.jira_token.get_secret_value(),
            user=settings.jira_user,
            project=settings.jira_project,
            issue_type=settings.jira_issue_type,
            done_transition=settings.jira_done_transition,
            priorities=settings.jira_priority_map,
            timeout=settings.jira_timeout,
            search_settle=settings.jira_search_settle,
        )
    }


def build_runtime(settings: Settings) -> Runtime:
    """Build every adapter. Raises ConfigError (naming the variable) on a bad setting."""
    executor, health = build_executor(settings)
    return Runtime(
        settings=settings,
        db=create_database(settings.database),
        executor=executor,
        health=health,
        inventory=FileInventory(settings.inventory_sources),
        clock=build_clock(settings),
        deliverers={**build_deliverers(settings), **build_ticket_deliverers(settings)},
    )


def create_app(settings: Settings) -> Runtime:
    """The application ``serve`` runs. The Slack issue extends this with the Bolt
    ``AsyncApp`` (and its ``authorize=``) when Slack is configured; headless it is the
    runtime alone."""
    return build_runtime(settings)
