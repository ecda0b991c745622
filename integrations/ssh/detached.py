"""Package commands run detached on the host, surviving a lost connection.

``start`` launches the command under ``setsid nohup`` writing ``before`` (installed
versions), ``output`` and finally ``exit`` (atomic rename) into
``/var/lib/patchgate/ops/<op_id>/``; an existing op dir (``mkdir lock``) refuses a second
start, so an op id never installs twice. ``status`` reads it back (NOOP / RUNNING /
EXIT n); ``wait`` polls, re-opening a dropped connection (bounded).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from integrations.packages import Command
from integrations.ssh.connection import SshConnection
from workflows.errors import CommandFailed, ExecutorError, HostUnreachable

OPS_DIR = "/var/lib/patchgate/ops"
TAIL_LINES = 40
_OP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Start a command detached from the SSH session; its exit code lands in $d/exit.
# Refuses to start the same op twice (the op dir exists): prints EXISTS.
_START = r"""
d=$1; shift; before=$1; shift
mkdir -p -- "$d" || exit 2
if ! mkdir -- "$d/lock" 2>/dev/null; then echo EXISTS; exit 0; fi
printf '%s\n' "$before" > "$d/before"
cd / || exit 2
setsid nohup sh -c '
  d=$1; shift
  "$@" > "$d/output" 2>&1
  echo $? > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit"
' patchgate-op "$d" "$@" </dev/null >/dev/null 2>&1 &
echo STARTED
"""

# Read an op back: NOOP (never started), RUNNING, or EXIT n + the output's tail.
_STATUS = r"""
d=$1
if [ ! -d "$d" ]; then echo NOOP; exit 0; fi
if [ ! -e "$d/exit" ]; then echo RUNNING; exit 0; fi
echo "EXIT $(cat "$d/exit")"
echo "--before"; cat "$d/before" 2>/dev/null
echo "--output"; tail -n 40 "$d/output" 2>/dev/null
"""


def op_dir(op_id: str) -> str:
    if not _OP_ID.match(op_id):
        raise ExecutorError("?", f"bad operation id {op_id!r}")
    return f"{OPS_DIR}/{op_id}"


@dataclass(frozen=True)
class OpStatus:
    state: str  # NOOP, RUNNING, EXIT
    exit_code: int = -1
    before: Mapping[str, str | None] = field(default_factory=dict)
    output: str = ""

    @classmethod
    def parse(cls, text: str) -> OpStatus:
        lines = text.splitlines()
        head = lines[0] if lines else "NOOP"
        if not head.startswith("EXIT "):
            return cls(state=head.strip() or "NOOP")
        before: dict[str, str | None] = {}
        output: list[str] = []
        section = ""
        for line in lines[1:]:
            if line in ("--before", "--output"):
                section = line
            elif section == "--before" and "=" in line:
                name, _, version = line.partition("=")
                before[name] = version or None
            elif section == "--output":
                output.append(line)
        code = head.split()[1] if len(head.split()) > 1 else "-1"
        return cls(
            state="EXIT",
            exit_code=int(code) if code.lstrip("-").isdigit() else -1,
            before=before,
            output="\n".join(output[-TAIL_LINES:]),
        )


def start(
    conn: SshConnection, directory: str, command: Command, before: Mapping[str, str | None]
) -> bool:
    """Start ``command`` detached; False if this op already exists on the host."""
    encoded = "\n".join(f"{n}={v or ''}" for n, v in sorted(before.items()))
    inner = command.full_argv()
    launcher = Command(
        ("sh", "-c", _START, "patchgate-start", directory, encoded, *inner), sudo=True
    )
    out = conn.run(launcher.shell(), timeout=60)
    if out.exit_code != 0:
        raise CommandFailed(
            conn.host,
            "could not start the package command",
            exit_code=out.exit_code,
            output_tail=out.tail(),
        )
    return "STARTED" in out.stdout


def status(conn: SshConnection, directory: str) -> OpStatus:
    command = Command(("sh", "-c", _STATUS, "patchgate-status", directory), sudo=True)
    return OpStatus.parse(conn.run(command.shell(), timeout=60).stdout)


def wait(
    conn: SshConnection,
    directory: str,
    *,
    reconnect: Callable[[], SshConnection],
    timeout: float,
    poll_interval: float,
) -> tuple[OpStatus, SshConnection]:
    """Poll until the op has an exit code. A dropped connection is re-opened (the
    command runs on, detached); bounded by ``timeout``. Returns the connection in use."""
    deadline = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            now = status(conn, directory)
            failures = 0
            if now.state != "RUNNING":
                return now, conn
        except HostUnreachable:
            failures += 1
            conn.close()
            if failures > 5 or time.monotonic() > deadline:
                raise
            time.sleep(min(2.0 * failures, 5.0))
            try:
                conn = reconnect()
            except HostUnreachable:
                continue  # counted at the next status attempt on the closed connection
            continue
        if time.monotonic() > deadline:
            raise CommandFailed(
                conn.host,
                f"{directory}: still running after {timeout:.0f}s",
                exit_code=-1,
            )
        time.sleep(poll_interval)
