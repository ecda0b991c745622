"""The README's headless tour, run as written: its first two shell blocks, from a clone
laid out as the quick start leaves it, with every command after the exports run from
another directory, and with $USER and $LOGNAME empty.

(The approval steps that follow are covered by tests/e2e/test_serve_tokens.py.)
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.harness import REPO, free_port

README = REPO / "README.md"


def tour_blocks() -> list[str]:
    text = README.read_text()
    tour = text[text.index("## A five-minute tour") :]
    tour = tour[: tour.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", tour, re.S)


def clone_layout(tmp: Path) -> Path:
    """What the first quick-start command leaves: the clone, with .venv/bin/patchgate."""
    clone = tmp / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / "examples").symlink_to(REPO / "examples")
    shim = clone / ".venv" / "bin" / "patchgate"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m bot.cli.main "$@"\n')
    shim.chmod(0o755)
    return clone


def test_the_readme_tour_runs_from_any_directory_without_user(tmp_path: Path) -> None:
    setup, watch = tour_blocks()[:2]
    clone = clone_layout(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    assert setup.startswith("cd path/to/patchgate"), setup
    script = setup.replace("cd path/to/patchgate", f"cd {clone}", 1)
    lines = script.splitlines()
    last_export = max(i for i, line in enumerate(lines) if "PATCHGATE_SERVER_URL" in line)
    lines.insert(last_export + 1, f"cd {elsewhere}  # the rest from another directory")
    script = "\n".join(lines)
    script = script.replace("/tmp/patchgate-serve.log", str(tmp_path / "serve.log"))
    script = script.replace("http://localhost:3000", f"http://127.0.0.1:{port}")
    watch = watch.replace("localhost:3000", f"127.0.0.1:{port}")
    wait = (
        "for i in $(seq 1 300); do\n"
        "  patchgate rollout list | grep -q awaiting_approval && break; sleep 0.3\n"
        "done\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        USER="",
        LOGNAME="",
        PATCHGATE_PORT=str(port),
        PATCHGATE_HOST="127.0.0.1",
        PATCHGATE_ENGINE_TICK="0.2",
    )
    proc = subprocess.Popen(
        ["bash", "-e", "-c", f"{script}\n{wait}{watch}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # serve (started with &) is in this session: stopped below
    )
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        time.sleep(0.5)
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "#1" in out and "weekly" in out and "awaiting_approval" in out, out
    assert '"leader": true' in out, out  # the curl of /healthz
    assert (clone / "patchgate.db").exists() and (clone / "hosts.json").exists()
    assert not list(elsewhere.iterdir()), "a file was written where the commands ran"
