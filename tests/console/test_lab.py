"""``patchgate console --lab``: the page drives real apt upgrades on the SSH lab's hosts
(``python -m tests.console.lab DIR`` boots them). Needs root, like every lab test; marked
slow (about two minutes here): ``scripts/test -m slow tests/console``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.console.conftest import ALICE, OPERATOR, console_env, gate_message, start_console, stop
from tests.lab.fixtures import require_lab

pytestmark = pytest.mark.slow


def installed(lab: Path, address: str) -> str:
    result = subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={lab / 'known_hosts'}",
            "-i",
            str(lab / "lab" / "client_ed25519"),
            f"patchgate@{address}",
            "dpkg-query",
            "-W",
            "-f",
            "'${Version}'",  # through the remote shell
            "demo-app",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_the_console_patches_the_labs_real_hosts_behind_an_approval(tmp_path: Path) -> None:
    require_lab()
    lab = tmp_path / "lab-dir"
    booting = subprocess.Popen(
        [sys.executable, "-m", "tests.console.lab", str(lab)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=console_env(),
    )
    try:
        deadline = time.monotonic() + 300
        while not (lab / "ready").exists():
            assert booting.poll() is None, booting.stdout.read() if booting.stdout else ""
            assert time.monotonic() < deadline, "the lab did not start"
            time.sleep(1)
        hosts = (lab / "inventory.yml").read_text()
        dev, staging = [
            line.split("ansible_host: '")[1].split("'")[0]
            for line in hosts.splitlines()
            if "ansible_host" in line
        ][:2]
        assert installed(lab, dev) == installed(lab, staging) == "1.0"
        console = start_console(tmp_path, "--lab", str(lab), "--data-dir", str(tmp_path / "d"))
        try:
            console.act("command", user=OPERATOR, channel="C0123456789", text="run lab")
            gate = console.wait("staging's gate", lambda: gate_message(console), within=240)
            assert installed(lab, dev) == "1.1" and installed(lab, staging) == "1.0"
            console.act(
                "click",
                user=ALICE,
                channel="C0123456789",
                ts=gate["ts"],
                block_id="",
                action_id="gate_approve",
            )
            console.wait(
                "production's gate",
                lambda: gate_message(console, after=float(gate["ts"])),
                within=240,
            )
            assert installed(lab, staging) == "1.1"
        finally:
            stop(console)
    finally:
        booting.send_signal(signal.SIGTERM)
        booting.wait(timeout=60)
    assert not (lab / "ready").exists()
