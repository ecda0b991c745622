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
from typing import TYPE_CHECKING, Any

from bot.settings import Settings
from bot.zone_alerts import ZoneAlerts
from integrations.inventory import FileInventory
from integrations.logging_notifier import LoggingDeliverer
from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
from workflows.clock import FileClock, SystemClock
from workflows.db import Database, create_database
from workflows.errors import ConfigError
from workflows.hostkeys import DbKnownHostStore
from workflows.notify import TOPIC as NOTIFY_TOPIC
from workflows.outbox import Deliverer
from workflows.ports import Clock, Directory, Executor, HealthChecker, Inventory

if TYPE_CHECKING:
    from bot.api import Api


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
    # The Slack face (bot.slack.app.SlackApp: the Bolt AsyncApp, its HTTP guard and
    # journal) when Slack is configured (PATCHGATE_SLACK_BOT_TOKEN), else None.
    slack: Any = None
    # The Jira face (bot.jira.JiraFace: the webhook route, the polling job) when
    # PATCHGATE_JIRA_WEBHOOK_SECRET or PATCHGATE_JIRA_POLL_INTERVAL is set, else None.
    jira: Any = None

    async def close(self) -> None:
        close_zones = getattr(self.executor, "close_zones", None)
        if close_zones is not None:
            close_zones()
        await self.db.dispose()


def build_executor(settings: Settings) -> tuple[Executor, HealthChecker]:
    """The executor and health checker ``PATCHGATE_EXECUTOR`` names.

    PATCHGATE_EXECUTOR=ssh is built by :func:`build_ssh_executor` (it needs the database).
    """
    if settings.executor == "recording":
        state_file = settings.recording_state_file
        if settings.broker_url is not None and state_file is not None:
            # Zone workers share the simulated hosts: steps lock the state file.
            from integrations.testing.shared import SharedRecordingExecutor

            RecordingExecutor.demo(state_file=state_file)  # creates it on first use
            shared = SharedRecordingExecutor(state_file=state_file)
            shared.detached_delay = settings.recording_apply_delay
            return _bounded(shared)
        executor = RecordingExecutor.demo(state_file=state_file)
        executor.apply_delay = settings.recording_apply_delay
        return _bounded(executor)
    raise ConfigError([f"PATCHGATE_EXECUTOR: unknown executor {settings.executor!r}"])


def _bounded(executor: RecordingExecutor) -> tuple[Executor, HealthChecker]:
    """The simulated hosts for ``serve``: its call records bounded (a rollout over
    100,000 simulated hosts would otherwise keep every call in memory)."""
    executor.bound_records()
    health = RecordingHealthChecker(executor)
    health.bound_records()
    return executor, health


def build_ssh_executor(settings: Settings, db: Database) -> tuple[Executor, HealthChecker]:
    """The SSH executor and the real health checker (PATCHGATE_EXECUTOR=ssh)."""
    from integrations.health import HealthChecker as RealHealthChecker
    from integrations.ssh import SshExecutor, SshOptions

    executor = SshExecutor(
        SshOptions(
            known_hosts=settings.ssh_known_hosts,
            ssh_config=settings.ssh_config_path,
            concurrency=settings.ssh_concurrency,
            command_timeout=settings.ssh_command_timeout,
            reboot_timeout=settings.ssh_reboot_timeout,
            kex=tuple(k.strip() for k in settings.ssh_kex.split(",") if k.strip()),
        ),
        host_keys=DbKnownHostStore(db),
    )
    return executor, RealHealthChecker(run_argv=executor.run_argv)


def build_zone_router(
    settings: Settings,
    executor: Executor,
    health: HealthChecker,
    alerts: ZoneAlerts | None = None,
) -> tuple[Executor, HealthChecker]:
    """Hosts with a zone (PATCHGATE_ZONE_VAR) go to that zone's workers over the broker
    (PATCHGATE_BROKER_URL), built on first use; the others to ``executor``. A zone left
    without a worker is reported to ``alerts`` (on-call in Slack, bot/zone_alerts.py)."""
    from integrations.zones.router import ZoneHealthChecker, ZoneRouter

    broker = settings.broker_url
    if broker is None:
        router = ZoneRouter(executor, calls=None, zone_var=settings.zone_var)
        return router, ZoneHealthChecker(health, router)
    backend = settings.broker_result_backend

    def calls() -> Any:
        from integrations.zones.client import ZoneClient, ZoneOptions

        client = ZoneClient(
            ZoneOptions(
                broker_url=broker.get_secret_value(),
                result_backend=None if backend is None else backend.get_secret_value(),
                wait_for_worker=settings.zone_wait,
                lost_after=settings.zone_lost_after,
                heartbeat=settings.zone_heartbeat,
                visibility_timeout=settings.broker_visibility_timeout,
            ),
            on_zone_down=None if alerts is None else alerts.down,
            on_zone_back=None if alerts is None else alerts.back,
        )
        if alerts is not None:
            alerts.waiting = client.waiting
        return client

    router = ZoneRouter(executor, calls=calls, zone_var=settings.zone_var)
    return router, ZoneHealthChecker(health, router)


def build_clock(settings: Settings) -> Clock:
    if settings.test_clock_file is not None:
        return FileClock(settings.test_clock_file)
    return SystemClock()


def build_deliverers(settings: Settings) -> dict[str, Deliverer]:
    """Outbox deliverers by topic. Headless (no Slack): notifications go to the log.

    With a bot token, ``notify`` goes to Slack through the Slack deliverer, and
    ``slack.upload`` (file uploads: ``/patch report``'s bundles) through the upload one.
    """
    if settings.slack_bot_token is not None:
        from integrations.slack import SlackDeliverer, make_client
        from integrations.slack.uploads import TOPIC as UPLOAD_TOPIC
        from integrations.slack.uploads import UploadDeliverer

        client = make_client(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        return {
            NOTIFY_TOPIC: SlackDeliverer(
                client,
                oncall_channel=settings.oncall_channel,
                oncall_group=settings.oncall_group,
            ),
            UPLOAD_TOPIC: UploadDeliverer(client),
        }
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
            risk_thresholds=settings.jira_risk_threshold_list,
            timeout=settings.jira_timeout,
            search_settle=settings.jira_search_settle,
            change_issue_type=settings.jira_change_issue_type,
            approve_command=settings.jira_approve_command,
            reject_command=settings.jira_reject_command,
        )
    }


def build_runtime(settings: Settings) -> Runtime:
    """Build every adapter. Raises ConfigError (naming the variable) on a bad setting."""
    db = create_database(settings.database)
    if settings.executor == "ssh":
        executor, health = build_ssh_executor(settings, db)
    else:
        executor, health = build_executor(settings)
    clock = build_clock(settings)
    alerts = ZoneAlerts(db, clock.now, alert_after=settings.zone_alert_after)
    executor, health = build_zone_router(settings, executor, health, alerts)
    return Runtime(
        settings=settings,
        db=db,
        executor=executor,
        health=health,
        inventory=_inventory(settings),
        clock=clock,
        deliverers={**build_deliverers(settings), **build_ticket_deliverers(settings)},
    )


def _inventory(settings: Settings) -> Inventory:
    """The files, or with ``backend:`` entries the files and the tools' hosts (the
    working backends are given, and the hosts read, by ``serve``'s Server)."""
    if not settings.inventory_backend_entries:
        return FileInventory(settings.inventory_sources, csv_columns=settings.csv_column_map)
    from bot.backends import tool_inventory

    return tool_inventory(settings, {}, checked=False)


def build_slack(settings: Settings, runtime: Runtime) -> Any:
    """The Slack face: the Bolt AsyncApp with its HTTP guard and journal (HTTP mode needs
    the signing secret; Socket Mode the app token)."""
    from bot.slack.app import build_bolt_app
    from bot.slack.deps import CandidateGroups, SlackDeps
    from integrations.slack import SlackDirectory, make_client

    assert settings.slack_bot_token is not None
    if settings.slack_app_token is None:
        settings.require("slack_signing_secret")
    token = settings.slack_bot_token.get_secret_value()
    client = make_client(token=token, base_url=settings.slack_api_url)

    deps = SlackDeps(
        settings=settings,
        db=runtime.db,
        directory=SlackDirectory(client, CandidateGroups(settings, runtime.db)),
        clock=runtime.clock,
        inventory=runtime.inventory,
        client=client,
    )
    secret = settings.slack_signing_secret
    return build_bolt_app(
        deps, signing_secret=secret.get_secret_value() if secret else "", token=token
    )


def build_api(settings: Settings, runtime: Runtime) -> Api:
    """The decisions API (``bot.api.Api``, /api/v1) on the runtime's database and clock;
    user-group membership from Slack when a bot token is set (otherwise only user IDs
    listed directly give power)."""
    from bot.api import Api, ApiDeps, NoGroups

    directory: Directory = NoGroups()
    if settings.slack_bot_token is not None:
        from bot.slack.deps import CandidateGroups
        from integrations.slack import SlackDirectory, make_client

        client = make_client(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        directory = SlackDirectory(client, CandidateGroups(settings, runtime.db))
    return Api(ApiDeps(settings=settings, db=runtime.db, clock=runtime.clock, directory=directory))


def create_app(settings: Settings) -> Runtime:
    """The application ``serve`` runs: the runtime, plus the Bolt ``AsyncApp`` (with its
    cached ``authorize=``) when a Slack bot token is set; headless otherwise."""
    runtime = build_runtime(settings)
    if settings.slack_bot_token is not None:
        runtime.slack = build_slack(settings, runtime)
    from bot.jira import build_jira_face

    runtime.jira = build_jira_face(
        settings, db=runtime.db, clock=runtime.clock, deliverers=runtime.deliverers
    )
    return runtime
