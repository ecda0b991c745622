"""The end-to-end harness: real ``patchgate`` processes on real databases.

The helpers here start ``patchgate serve`` as a subprocess on a free port, talk to its
/healthz and /metrics, and stop it (always: use :class:`ServeProcess` as a context
manager, so a failing test never leaves a process behind).

:class:`ForkedServe` and :func:`forked_patchgate` start the same command as a process
forked from a fork server that imported PatchGate once (see :func:`fork_server`): for
suites that start hundreds of processes (the crash matrix), where the imports are most
of the CPU.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.context import ForkServerContext
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.dbutil import audit_key_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PLANS = REPO / "examples" / "plans"
EXAMPLE_INVENTORY = REPO / "examples" / "inventory"

# The operator who starts rollouts in these tests (PATCHGATE_OPERATORS of serve).
OPERATOR = "U0OPERATOR1"
STARTUP_TIMEOUT = 45.0  # importing everything takes a few seconds on a busy machine

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a headless ``patchgate`` on ``url`` with the example fleet."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PATCHGATE_")}
    env.update(
        {
            "PATCHGATE_DATABASE_URL": url,
            "PATCHGATE_EXECUTOR": "recording",
            "PATCHGATE_PLANS_DIR": str(EXAMPLE_PLANS),
            "PATCHGATE_INVENTORY": str(EXAMPLE_INVENTORY),
            "PATCHGATE_OPERATORS": OPERATOR,
            "PATCHGATE_HOST": "127.0.0.1",
            "PATCHGATE_ENGINE_TICK": "0.2",
            "PATCHGATE_LEADER_TAKEOVER": "3",
            "PATCHGATE_METRICS_INTERVAL": "1",  # ServeProcess.metrics waits for a fresh one
            "PATCHGATE_LOG_LEVEL": "INFO",
            # no scheduled discovery or assessment unless a test asks for it
            "PATCHGATE_DISCOVERY_INTERVAL": "0",
            "PATCHGATE_ASSESS_INTERVAL": "0",
            "PYTHONPATH": str(REPO),
            **audit_key_env(url),
        }
    )
    env.update(extra)
    return env


def patchgate(
    env: Mapping[str, str], *argv: str, cwd: Path, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *argv],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,  # no .env from the checkout
        timeout=timeout,
        check=False,
    )


def migrate(url: str, cwd: Path) -> None:
    result = patchgate(base_env(url), "db", "upgrade", cwd=cwd)
    assert result.returncode == 0, result.stderr


def create_token(url: str, user: str, cwd: Path) -> str:
    """A personal token for ``user``, issued as an administrator does: ``patchgate token
    create`` with the database credentials."""
    result = patchgate(base_env(url), "token", "create", "--user", user, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    token: str = json.loads(result.stdout)["token"]
    return token


def decider_env(serve: ServeProcess, token: str) -> dict[str, str]:
    """The environment of a person's ``patchgate`` deciding through ``serve``: its URL and
    their token, and no database credentials."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PATCHGATE_")}
    env.update(
        PATCHGATE_SERVER_URL=f"http://127.0.0.1:{serve.port}",
        PATCHGATE_TOKEN=token,
        PYTHONPATH=str(REPO),
    )
    return env


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, every: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class ServeProcess:
    """One ``patchgate serve`` subprocess; its output goes to ``log_path``."""

    def __init__(
        self, env: Mapping[str, str], *, cwd: Path, name: str = "serve", port: int | None = None
    ) -> None:
        self.port = free_port() if port is None else port
        self.env = {**env, "PATCHGATE_PORT": str(self.port)}
        self.cwd = cwd
        self.log_path = cwd / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli.main", "serve"],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    # --- control ------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code (negative: the signal), or None while it runs or before it started."""
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, *, timeout: float) -> int:
        """SIGTERM; the exit code, which must come within ``timeout`` seconds."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"serve did not exit within {timeout:g}s of SIGTERM\n{self.log()}"
            ) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- HTTP -----------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def healthz(self) -> dict[str, Any] | None:
        """/healthz's body, or None while the server is not answering yet."""
        try:
            _, body = self.get("/healthz")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        data: dict[str, Any] = json.loads(body)
        return data

    def metrics(self) -> str:
        """/metrics as of a snapshot taken after this call (serve refreshes it in the
        background every PATCHGATE_METRICS_INTERVAL seconds: 1 in ``base_env``)."""
        asked = time.time()

        def fresh() -> str | None:
            status, body = self.get("/metrics")
            assert status == 200, body
            text = body.decode()
            taken = metric(text, "patchgate_metrics_refreshed_timestamp_seconds")
            return text if taken is not None and taken >= asked else None

        return wait_for("a metrics snapshot taken after the request", fresh, timeout=20)

    def wait_ready(self, *, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}\n{self.log()}")
            return self.healthz()

        return wait_for(f"serve on port {self.port} to answer /healthz", probe, timeout=timeout)

    def wait_leader(self, *, timeout: float) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            health = self.healthz()
            return health if health and health["leader"] else None

        try:
            return wait_for(f"serve on port {self.port} to lead", probe, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()}") from None


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    wanted = f"{name}{{{label_text}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return None


# --- forked processes ------------------------------------------------------------------------

# What the fork server imports once: every command the crash harness runs, and what
# `serve` imports when it builds the app (Slack, Jira, the executors, the HTTP server).
PRELOAD = (
    *("bot.cli.main", "bot.cli.serve", "bot.cli.audit", "bot.app", "bot.logging", "bot.server"),
    *("bot.slack.app", "bot.reporting", "integrations.slack.deliverer", "integrations.jira"),
    *("workflows.plans", "workflows.assessment", "workflows.reports"),
    *("slack_bolt.async_app", "jira", "croniter", "ruamel.yaml", "psycopg", "aiosqlite"),
    *("apscheduler.executors.asyncio", "apscheduler.triggers.date"),
)
FORKED_TIMEOUT = 90.0
_fork_server: ForkServerContext | None = None


def fork_server() -> ForkServerContext:
    """The multiprocessing fork server of this test session, with PRELOAD imported.

    A process it forks is a real OS process (its own pid, environment, working directory,
    file descriptors and event loop, SIGKILLed for real) that runs ``bot.cli.main.main``,
    as ``python -m bot.cli.main`` does, minus the second or so of CPU that importing
    PatchGate costs every fresh interpreter. PatchGate does no work at import time,
    so nothing the children share was set up for the parent."""
    global _fork_server
    if _fork_server is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        _fork_server = context
    return _fork_server


def _forked_main(argv: Sequence[str], env: Mapping[str, str], cwd: str, output: str) -> None:
    """A forked child's body: ``patchgate ARGV`` with this environment, working directory
    and stdout/stderr, exiting with its exit code."""
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from bot.cli.main import main

    code = main(list(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def fork_patchgate(
    env: Mapping[str, str], *argv: str, cwd: Path, output: Path
) -> multiprocessing.process.BaseProcess:
    """Start ``patchgate ARGV`` forked from :func:`fork_server`; its stdout and stderr go
    to ``output``. The caller waits for it (``exitcode``) or kills it."""
    process = fork_server().Process(
        target=_forked_main,
        args=(tuple(argv), dict(env), str(cwd), str(output)),
        name=f"patchgate {' '.join(argv)}",
        daemon=True,  # terminated at the session's exit if a test left it running
    )
    process.start()
    return process


async def wait_exit(process: multiprocessing.process.BaseProcess) -> int:
    """A forked process's exit code, awaited on its sentinel (readable once it ended)."""
    if process.exitcode is None:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        loop.add_reader(process.sentinel, _resolve, ended)
        try:
            await ended
        finally:
            loop.remove_reader(process.sentinel)
    code = process.exitcode
    assert code is not None, "the sentinel was readable but no exit code came"
    return code


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def forked_patchgate(
    env: Mapping[str, str], *argv: str, cwd: Path, output: Path
) -> tuple[int, str]:
    """Run ``patchgate ARGV`` forked from :func:`fork_server` to its end (at most
    FORKED_TIMEOUT seconds) without blocking the event loop: its exit code and output."""
    process = fork_patchgate(env, *argv, cwd=cwd, output=output)
    try:
        async with asyncio.timeout(FORKED_TIMEOUT):
            code = await wait_exit(process)
    except TimeoutError:
        process.kill()
        raise AssertionError(
            f"patchgate {' '.join(argv)} still running after {FORKED_TIMEOUT:g}s"
        ) from None
    return code, await asyncio.to_thread(output.read_text, errors="replace")


class ForkedServe(ServeProcess):
    """``patchgate serve`` forked from :func:`fork_server`; otherwise as ServeProcess."""

    def __init__(
        self, env: Mapping[str, str], *, cwd: Path, name: str = "serve", port: int | None = None
    ) -> None:
        super().__init__(env, cwd=cwd, name=name, port=port)
        self.process: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> ForkedServe:
        self.process = fork_patchgate(self.env, "serve", cwd=self.cwd, output=self.log_path)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None and self.process.pid is not None
        return self.process.pid

    def poll(self) -> int | None:
        return None if self.process is None else self.process.exitcode

    def wait_ready(self, *, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if (code := self.poll()) is not None:
                raise AssertionError(f"serve exited with {code}\n{self.log()}")
            return self.healthz()

        return wait_for(f"serve on port {self.port} to answer /healthz", probe, timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.exitcode is None:
            self.process.kill()
            self.process.join(timeout=10)

    def terminate(self, *, timeout: float) -> int:
        assert self.process is not None
        if self.process.exitcode is None:
            os.kill(self.pid, signal.SIGTERM)
        self.process.join(timeout=timeout)
        if self.process.exitcode is None:
            raise AssertionError(f"serve did not exit within {timeout:g}s of SIGTERM\n{self.log()}")
        return self.process.exitcode
