"""CLI command: worker — ``patchgate worker --zone NAME``: run the host work of one zone.

Consumes the zone's queue (``patchgate.zone.NAME``) on ``PATCHGATE_BROKER_URL`` and runs
each call with this machine's SSH settings (PATCHGATE_SSH_*: known_hosts, keys, OpenSSH
config), sending the typed result back as JSON. A worker holds no database credentials:
it refuses to start when PATCHGATE_DATABASE_URL (or DATABASE_URL) is set. Host keys it
accepts at first contact go to its own known_hosts file (integrations/zones/knownhosts.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from bot.cli.common import command
from bot.settings import Settings
from integrations.zones.celeryapp import ZONE_NAME, make_app, queue_name
from workflows.errors import ConfigError
from workflows.ports import Executor, HealthChecker

if TYPE_CHECKING:
    from integrations.zones.worker import SelfCheck

log = logging.getLogger("patchgate.worker")

HELP = "Run the host work of one zone (a Celery worker on PATCHGATE_BROKER_URL)."


def register(sub: Any) -> None:
    p = command(sub, "worker", worker, HELP)
    p.add_argument("--zone", required=True, help="the zone whose hosts this worker works on")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="calls run at once (default PATCHGATE_WORKER_CONCURRENCY, else "
        "PATCHGATE_SSH_CONCURRENCY)",
    )


def check_worker_settings(zone: str, settings: Settings) -> None:
    """Refuse a worker that could reach the database, or has no broker or a bad zone."""
    problems = []
    if not ZONE_NAME.match(zone):
        problems.append(f"--zone: bad zone name {zone!r} (letters, digits, '.', '_', '-')")
    if settings.broker_url is None:
        problems.append("PATCHGATE_BROKER_URL: required for this command")
    held = [n for n in ("PATCHGATE_DATABASE_URL", "DATABASE_URL") if os.environ.get(n)]
    if held or "database_url" in settings.model_fields_set:
        problems.append(
            f"{(held or ['PATCHGATE_DATABASE_URL'])[0]}: a zone worker holds no database "
            "credentials; unset it in the worker's environment (and .env)"
        )
    if problems:
        raise ConfigError(problems)


def build_worker_executor(settings: Settings) -> tuple[Executor, HealthChecker]:
    """The zone's executor: SSH with this worker's settings, or the shared recording fake."""
    if settings.executor == "recording":
        from integrations.testing.executor import RecordingExecutor, RecordingHealthChecker
        from integrations.testing.shared import SharedRecordingExecutor

        if settings.recording_state_file is None:
            raise ConfigError(["PATCHGATE_RECORDING_STATE_FILE: required for a recording worker"])
        RecordingExecutor.demo(state_file=settings.recording_state_file)
        shared = SharedRecordingExecutor(state_file=settings.recording_state_file)
        shared.detached_delay = settings.recording_apply_delay
        return shared, RecordingHealthChecker(shared)
    from integrations.health import HealthChecker as RealHealthChecker
    from integrations.ssh import SshExecutor, SshOptions
    from integrations.zones.knownhosts import FileKnownHostStore

    executor = SshExecutor(
        SshOptions(
            known_hosts=settings.ssh_known_hosts,
            ssh_config=settings.ssh_config_path,
            concurrency=settings.worker_concurrency or settings.ssh_concurrency,
            command_timeout=settings.ssh_command_timeout,
            reboot_timeout=settings.ssh_reboot_timeout,
            kex=tuple(k.strip() for k in settings.ssh_kex.split(",") if k.strip()),
        ),
        host_keys=FileKnownHostStore(settings.ssh_known_hosts),
    )
    return executor, RealHealthChecker(run_argv=executor.run_argv)


async def worker(args: argparse.Namespace, settings: Settings) -> int:
    from integrations.zones.worker import ZoneWorker
    from integrations.zones.worker import register as register_task

    zone = str(args.zone)
    check_worker_settings(zone, settings)
    assert settings.broker_url is not None
    slots = args.concurrency or settings.worker_concurrency or settings.ssh_concurrency
    if slots < 1:
        raise ConfigError(["--concurrency: must be at least 1"])
    executor, health = build_worker_executor(settings)
    pause = None
    if settings.test_worker_pause is not None:
        point, _, seconds = settings.test_worker_pause.partition(":")
        pause = (point, float(seconds))
    runtime = ZoneWorker(
        executor, health, zone=zone, slots=slots, pause=pause, step_log=settings.test_step_log
    )
    backend = settings.broker_result_backend
    app = make_app(
        settings.broker_url.get_secret_value(),
        result_backend=None if backend is None else backend.get_secret_value(),
        visibility_timeout=settings.broker_visibility_timeout,
    )
    register_task(app, runtime)
    logging.getLogger("celery.worker").addHandler(_RestartOnUnrecoverable())
    name = f"{zone}.{os.getpid()}@{socket.gethostname()}"
    log.info("zone worker %s: queue %s, %d slots", name, queue_name(zone), slots)
    check = _self_check(settings, name)
    try:
        code = _run_celery(
            app,
            [
                "worker",
                "--queues",
                queue_name(zone),
                "--pool",
                "threads",
                "--concurrency",
                str(slots),
                "--hostname",
                name,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                settings.log_level,
            ],
        )
    finally:
        if check is not None:
            check.stopped.set()
        runtime.close()
    if code != 0:
        _restart(f"zone worker {name} stopped (exit {code})")
    return 0


def _self_check(settings: Settings, name: str) -> SelfCheck | None:
    """The worker's look at itself (integrations/zones/worker.py: SelfCheck), armed when
    Celery says the worker is ready, on an app (and connections) of its own."""
    interval = settings.worker_self_check
    if not interval:
        return None
    from celery.signals import worker_ready, worker_shutting_down

    from integrations.zones.worker import SelfCheck, answers

    assert settings.broker_url is not None
    backend = settings.broker_result_backend
    own = make_app(
        settings.broker_url.get_secret_value(),
        result_backend=None if backend is None else backend.get_secret_value(),
    )
    timeout = min(5.0, max(1.0, interval / 2))
    check = SelfCheck(
        lambda: answers(own, name, timeout=timeout),
        lambda why: _restart(f"zone worker {name}: {why}", 0.0),
        interval=interval,
    )

    def ready(**_: Any) -> None:
        check.armed.set()

    def shutting_down(**_: Any) -> None:  # a warm shutdown may wait long on calls
        check.stopped.set()

    worker_ready.connect(ready, weak=False)
    worker_shutting_down.connect(shutting_down, weak=False)
    check.start()
    return check


RESTART = 2.0


def _restart(why: str, pause: float = RESTART) -> None:
    """Start afresh in this same process (same pid: a supervisor sees no exit). The
    broker re-delivers what was not acknowledged and the leader re-sends what was lost;
    an apply already started finishes on the host and is answered from its op status."""
    log.error("%s; starting again in %.0fs", why, pause)
    time.sleep(pause)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.execv(sys.executable, [sys.executable, "-m", "bot.cli.main", *sys.argv[1:]])


class _RestartOnUnrecoverable(logging.Handler):
    """Celery's worker can give up on a lost broker connection ("Unrecoverable error":
    kombu's Redis transport fails restoring unacked messages when the server is gone),
    then hang in its shutdown waiting on calls that cannot store their results. This
    handler sees that log record and restarts the worker process."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.CRITICAL and "Unrecoverable error" in record.getMessage():
            # At once: Celery's own shutdown may end the process before a pause is over.
            why = record.getMessage()
            threading.Thread(target=_restart, args=(why, 0.0), daemon=True).start()


def _run_celery(app: Any, argv: list[str]) -> int:
    """Run the Celery worker; its exit status (0 after a warm shutdown)."""
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
