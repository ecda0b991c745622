"""Command recorders installed in a lab host before it boots.

- sshd ``ForceCommand`` runs ``pg-sshlog``, which appends the exact command line the
  client sent (``$SSH_ORIGINAL_COMMAND``, base64, one per line) to ``/var/log/pg/ssh.log``
  and then runs it with ``/bin/sh -c`` as sshd would have.
- ``sudo``, ``apt-get``, ``apt``, ``dpkg`` and ``dpkg-query`` are shadowed by wrappers in
  ``/usr/local/bin`` (first in both the login PATH and sudo's ``secure_path``) that
  append their argv (each argument base64, space separated) to ``/var/log/pg/argv.log``
  and exec the real program; ``pg-argv`` records its argv and exits 0.

Tests read both logs to assert what ran on the host, argument by argument.
"""

from __future__ import annotations

import base64

from tests.lab.hosts import LabHost

WRAPPED = {
    "sudo": "/usr/bin/sudo",
    "apt-get": "/usr/bin/apt-get",
    "apt": "/usr/bin/apt",
    "dpkg": "/usr/bin/dpkg",
    "dpkg-query": "/usr/bin/dpkg-query",
    "pg-argv": "/bin/true",
}

_WRAPPER = """#!/bin/sh
line={name}
for a in "$@"; do line="$line $(printf '%s' "$a" | base64 -w0)"; done
printf '%s\\n' "$line" >> /var/log/pg/argv.log  # one write: concurrent lines stay whole
exec {real} "$@"
"""

_SSHLOG = """#!/bin/sh
line=$(printf '%s' "$SSH_ORIGINAL_COMMAND" | base64 -w0)
printf '%s\\n' "$line" >> /var/log/pg/ssh.log
if [ -z "$SSH_ORIGINAL_COMMAND" ]; then exec /bin/sh; fi
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
"""


def install(host: LabHost) -> None:
    """Write the recorders into the host's upper dir (after ``prepare``, before ``start``)."""
    for name, real in WRAPPED.items():
        host._write(f"usr/local/bin/{name}", _WRAPPER.format(name=name, real=real), 0o755)
    host._write("usr/local/sbin/pg-sshlog", _SSHLOG, 0o755)
    host._write("etc/ssh/sshd_config.d/zz-cmdlog.conf", "ForceCommand /usr/local/sbin/pg-sshlog\n")
    for log in ("ssh.log", "argv.log"):
        host._write(f"var/log/pg/{log}", "", 0o666)
    (host.state_dir / "upper" / "var/log/pg").chmod(0o1777)


def clear(host: LabHost) -> None:
    host.sh(": > /var/log/pg/ssh.log; : > /var/log/pg/argv.log")


def ssh_commands(host: LabHost) -> list[str]:
    """Every command line sshd was asked to run, in order."""
    text = host.sh("cat /var/log/pg/ssh.log")
    return [base64.b64decode(line).decode("utf-8", "surrogateescape") for line in text.splitlines()]


def argvs(host: LabHost, program: str | None = None) -> list[list[str]]:
    """Every recorded invocation of a wrapped program (argv without the program name)."""
    out = []
    for line in host.sh("cat /var/log/pg/argv.log").splitlines():
        name, *args = line.split(" ")
        if program is None or name == program:
            out.append([base64.b64decode(a).decode("utf-8", "surrogateescape") for a in args])
    return out
