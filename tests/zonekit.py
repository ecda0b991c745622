"""Zone-worker test kit: brokers, real `patchgate worker` processes, a zoned engine rig.

Brokers are the machine's Redis (a database number per test module) and RabbitMQ (a
vhost per test module, made with rabbitmqctl), or a private redis-server a test may
restart. Outside CI a missing broker skips; in CI (CI=true) it fails. Leader and workers
share the simulated hosts through a state file (integrations/testing/shared.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integrations.testing.executor import RecordingHealthChecker
from integrations.testing.shared import SharedRecordingExecutor
from integrations.testing.simjournal import load_state
from integrations.zones.client import ZoneClient, ZoneOptions
from integrations.zones.router import ZoneHealthChecker, ZoneRouter
from tests.enginekit import Rig
from workflows.db import Database
from workflows.ports import InventoryHost

ROOT = Path(__file__).resolve().parents[1]
REDIS = "redis://127.0.0.1:6379"
RABBIT = "amqp://guest:guest@127.0.0.1:5672"


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not available (CI must start it)")
    pytest.skip(f"{what} is not available")


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_broker(db: int) -> Iterator[str]:
    if not _reachable(6379):
        _unavailable("Redis on 127.0.0.1:6379")
    url = f"{REDIS}/{db}"
    subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, capture_output=True)
    yield url


@contextmanager
def rabbit_broker(name: str) -> Iterator[str]:
    if not _reachable(5672) or shutil.which("rabbitmqctl") is None:
        _unavailable("RabbitMQ on 127.0.0.1:5672 (with rabbitmqctl)")
    vhost = f"patchgate-test-{name}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"{RABBIT}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


class PrivateRedis:
    """A redis-server of the test's own (AOF on), which the test may restart."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            _unavailable("redis-server")
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable(self.port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: Redis syncs its AOF and exits
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@dataclass
class Worker:
    zone: str
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no ack, no result."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until Celery logs the worker ready (it answers the leader's heartbeat)."""
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            assert self.proc.poll() is None, self.output()[-2000:]
            assert time.monotonic() < deadline, "the worker did not get ready"
            time.sleep(0.1)


@dataclass
class Fleet:
    """The workers a test started (each stopped at the end) and their shared files."""

    broker: str
    directory: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.directory / "hosts.json"

    @property
    def step_log(self) -> Path:
        return self.directory / "steps.log"

    def start(self, zone: str, *, slots: int = 4, **env: str) -> Worker:
        n = len(self.workers)
        log = self.directory / f"worker-{zone}-{n}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
        environment.pop("DATABASE_URL", None)
        environment.update(
            {
                "PYTHONPATH": str(ROOT),
                "PATCHGATE_BROKER_URL": self.broker,
                "PATCHGATE_EXECUTOR": "recording",
                "PATCHGATE_RECORDING_STATE_FILE": str(self.state_file),
                "PATCHGATE_TEST_STEP_LOG": str(self.step_log),
                "PATCHGATE_LOG_LEVEL": "INFO",
                # A worker whose consumer went deaf after a broker restart starts afresh
                # within about ten seconds, well inside the tests' wait for a worker.
                "PATCHGATE_WORKER_SELF_CHECK": "3",
                **env,
            }
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli.main",
                "worker",
                "--zone",
                zone,
                "--concurrency",
                str(slots),
            ],
            cwd=self.directory,
            env=environment,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(zone=zone, proc=proc, log=log)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.terminate()
        for worker in self.workers:
            try:
                worker.proc.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()

    def wait_for_step(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.step_log.exists():
                for line in self.step_log.read_text().splitlines():
                    if line.startswith(text):
                        return line
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the step log")

    def applied_ops(self) -> dict[str, list[str]]:
        state = load_state(self.state_file)
        return {name: list(host.applied_ops) for name, host in state.hosts.items()}


@contextmanager
def fleet(broker: str, directory: Path) -> Iterator[Fleet]:
    f = Fleet(broker=broker, directory=directory)
    try:
        yield f
    finally:
        f.stop_all()


def zoned_hosts(zones: dict[str, str | None]) -> list[InventoryHost]:
    """The engine kit's ten hosts, each given a zone (None: the leader's own)."""
    from tests.enginekit import make_hosts

    hosts = []
    for host in make_hosts():
        zone = zones.get(host.name)
        hosts.append(
            InventoryHost(
                name=host.name,
                groups=host.groups,
                vars={"patchgate_zone": zone} if zone else {},
            )
        )
    return hosts


FAST = {"lost_after": 3.0, "heartbeat": 0.5, "wait_for_worker": 120.0}


def zoned_rig(
    db: Database,
    fleet: Fleet,
    zones: dict[str, str | None],
    *,
    alerts: Any = None,
    **options: Any,
) -> Rig:
    """An engine rig whose executor routes zoned hosts to ``fleet``'s workers (a zone
    without a worker reported to ``alerts``, a bot.zone_alerts.ZoneAlerts)."""
    rig = Rig(db, hosts=zoned_hosts(zones))
    rig.executor.state_file = fleet.state_file
    rig.executor.save()
    local = SharedRecordingExecutor(state_file=fleet.state_file)
    opts = {**FAST, **options}

    def calls() -> ZoneClient:
        client = ZoneClient(
            ZoneOptions(broker_url=fleet.broker, **opts),
            on_zone_down=None if alerts is None else alerts.down,
            on_zone_back=None if alerts is None else alerts.back,
        )
        if alerts is not None:
            alerts.waiting = client.waiting
        return client

    router = ZoneRouter(local, calls=calls)
    rig.executor = router  # type: ignore[assignment]
    rig.health = ZoneHealthChecker(RecordingHealthChecker(local), router)  # type: ignore[assignment]
    return rig


def everyone_once(fleet: Fleet, names: Sequence[str]) -> dict[str, int]:
    ops = fleet.applied_ops()
    return {name: len(ops.get(name, [])) for name in names}


class PrivateRabbit:
    """A RabbitMQ node of the test's own (its name, ports, mnesia, cookie, no plugins),
    beside the machine's, which the test may stop and start again; its data (durable
    queues, persistent messages) outlives a restart, as on a real broker."""

    def __init__(self, directory: Path) -> None:
        server = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
        if not server.exists() or shutil.which("rabbitmqctl") is None:
            _unavailable("rabbitmq-server")
        directory.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.directory = directory
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"pgtest{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "env.conf").write_text("")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(directory),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(self.server.with_name("rabbitmqctl")), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.server)],
            env=self.env,
            cwd=self.directory,
            stdout=(self.directory / "server.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        done = self._ctl("wait", "--timeout", "90", str(self.directory / "rabbit.pid"), timeout=120)
        if done.returncode != 0 or not _reachable(self.port):
            out = (self.directory / "server.out").read_text(errors="replace")[-2000:]
            self.stop()
            raise AssertionError(f"the private RabbitMQ did not start: {done.stderr!r}\n{out}")

    def stop(self) -> None:
        if self.proc is not None:
            self._ctl("stop", str(self.directory / "rabbit.pid"), timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
