"""End-to-end tests: real ``patchgate`` processes on real databases.

The helpers here start ``patchgate serve`` as a subprocess on a free port, talk to its
/healthz and /metrics, and stop it (always: use :class:`ServeProcess` as a context
manager, so a failing test never leaves a process behind).
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PLANS = REPO / "examples" / "plans"
EXAMPLE_INVENTORY = REPO / "examples" / "inventory"

# The operator who starts rollouts in these tests: the OS user running them, mapped.
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
            "PATCHGATE_CLI_IDENTITIES": f"{getpass.getuser()}={OPERATOR}",
            "PATCHGATE_HOST": "127.0.0.1",
            "PATCHGATE_ENGINE_TICK": "0.2",
            "PATCHGATE_LEADER_TAKEOVER": "3",
            "PATCHGATE_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
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

    def __init__(self, env: Mapping[str, str], *, cwd: Path, name: str = "serve") -> None:
        self.port = free_port()
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
        status, body = self.get("/metrics")
        assert status == 200, body
        return body.decode()

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
