"""OpenSSH client configs for lab hosts, written the way a user writes ~/.ssh/config,
and a runner for OpenSSH itself (``ssh -F``) to compare PatchGate against."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.lab.hosts import LabHost


def host_block(name: str, **options: object) -> str:
    """``Host name`` with its options (``ProxyJump="a,b"``; lists repeat the option)."""
    lines = [f"Host {name}"]
    for option, value in options.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            lines.append(f"    {option} {item}")
    return "\n".join(lines) + "\n\n"


def endpoint(host: LabHost) -> dict[str, object]:
    return {"HostName": host.address, "Port": host.port}


def write_known_hosts(
    path: Path, hosts: list[LabHost], *, alias: dict[str, LabHost] | None = None
) -> Path:
    lines = [h.known_hosts_line for h in hosts]
    lines += [f"{name} {h.host_key_pub}" for name, h in (alias or {}).items()]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def home_with_default_key(home: Path, client_key: Path) -> Path:
    """A HOME whose only key is ~/.ssh/id_ed25519 (a copy of the lab's client key)."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ssh.chmod(0o700)
    shutil.copy(client_key, ssh / "id_ed25519")
    (ssh / "id_ed25519").chmod(0o600)
    shutil.copy(client_key.with_suffix(".pub"), ssh / "id_ed25519.pub")
    return ssh


@contextmanager
def ssh_agent_with(key: Path, work: Path) -> Iterator[dict[str, str]]:
    """An ssh-agent holding ``key``; yields the environment for OpenSSH. (OpenSSH takes
    ``~`` from the password database, not $HOME, so a temporary HOME's default key is
    not found by ``ssh``: OpenSSH gets the same key from an agent instead.)"""
    sock = work / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=30)
        yield env
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def openssh(
    config: Path, host: str, command: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``ssh -F config host command`` in batch mode, bounded."""
    return subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", host, command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
