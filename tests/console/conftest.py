"""The console kit: ``patchgate console`` as a real process, and a way to read what a
person sees on its page (``GET /console/state``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, free_port

OPERATOR, ALICE, BOB, OUTSIDER, ONCALL = (
    "U0999OPERA",
    "U0123ABCDE",
    "U0456FGHIJ",
    "U0777OUTSI",
    "U0555ONCAL",
)
PATCHING = "C0123456789"


def console_env(**extra: str) -> dict[str, str]:
    """The environment with no PATCHGATE_* setting of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(PYTHONPATH=str(REPO), PATCHGATE_LOG_LEVEL="INFO", **extra)
    return env


@dataclass
class Console:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def state(self, user: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/console/state?user={user}") as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def act(self, what: str, **body: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/console/{what}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as resp:
            data: dict[str, Any] = json.load(resp)
            return data

    def messages(self, channel: str = PATCHING, user: str = OPERATOR) -> list[dict[str, Any]]:
        chans = self.state(user)["channels"]
        return next(c["messages"] for c in chans if c["id"] == channel)

    def wait(self, what: str, check: Callable[[], Any], within: float = 60) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if found := check():
                return found
            time.sleep(0.2)
        raise AssertionError(f"waited {within}s for {what}; log:\n{self.log.read_text()[-3000:]}")


def start_console(tmp: Path, *args: str, **env: str) -> Console:
    port = free_port()
    log = tmp / "console.log"
    out = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "console", "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=console_env(**env),
        cwd=tmp,
    )
    console = Console(f"http://127.0.0.1:{port}", process, log)
    try:
        console.wait("the console's address", lambda: "PatchGate console: open" in log.read_text())
    except AssertionError:
        stop(console)
        raise
    return console


def stop(console: Console) -> None:
    if console.process.poll() is None:
        console.process.send_signal(signal.SIGTERM)
        try:
            console.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            console.process.kill()
            console.process.wait()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    running = start_console(tmp_path, "--data-dir", str(tmp_path / "data"))
    try:
        yield running
    finally:
        stop(running)


def gate_message(console: Console, *, after: float = 0) -> dict[str, Any] | None:
    """The first message in #patching with an Approve button posted after ``after``."""
    for msg in console.messages():
        ids = [
            e.get("action_id")
            for b in msg["blocks"]
            for e in (b.get("elements") or [])
            if isinstance(e, dict)
        ]
        if "gate_approve" in ids and float(msg["ts"]) > after:
            return msg
    return None
