"""How the SSH executor reaches a host: one connection per host per step, in a pool.

- ``SshSessions.connection`` builds an ``SshConnection`` (paramiko Transport, strict host
  keys, KEX order, jump host, sudo password; see connection.py). All blocking work runs
  in one ThreadPoolExecutor sized ``PATCHGATE_SSH_CONCURRENCY``.
- Host keys: known_hosts parsed once (``KnownHosts``), shared by a strict policy. Keys
  accepted at first contact (inventory opt-in) are kept through the ``KnownHostStore``
  port (the domain stores and audits them); a changed key is always refused.
- ``_checked`` runs a driver command, backing off while the package database is locked;
  ``_driver`` picks the host's package driver. The port's methods are in executor.py.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import paramiko

from integrations.packages import Command, CommandOutput, PackageDriver, driver_for
from integrations.ssh.connection import (
    Credentials,
    Endpoint,
    SshConnection,
    default_user,
    parse_jump,
)
from integrations.ssh.credentials import PrivateKeys, secret
from integrations.ssh.hostkeys import KnownHosts, StrictPolicy, fingerprint, key_name
from workflows.errors import CommandFailed, HostKeyRejected
from workflows.ports import InventoryHost, KnownHostStore

T = TypeVar("T")

FACTS_SCRIPT = r"""
[ -r /etc/os-release ] && . /etc/os-release
echo "id=${ID:-unknown}"
echo "version=${VERSION_ID:-unknown}"
echo "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
echo "kernel=$(uname -r)"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
for pm in apt-get dnf yum zypper; do
  if command -v "$pm" >/dev/null 2>&1; then echo "pm=$pm"; break; fi
done
"""

# The package manager FACTS_SCRIPT found, as the driver name.
PACKAGE_MANAGERS = {"apt-get": "apt", "apt": "apt", "dnf": "dnf", "yum": "yum", "zypper": "zypper"}


@dataclass(frozen=True)
class SshOptions:
    known_hosts: Path | None = Path("~/.ssh/known_hosts")
    concurrency: int = 50
    command_timeout: float = 1800.0
    connect_timeout: float = 15.0
    reboot_timeout: float = 600.0
    kex: tuple[str, ...] = (
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
    )
    poll_interval: float = 0.5
    lock_retries: int = 4


class SshSessions:
    """Connections, the worker pool and host keys. ``host_keys`` keeps the keys accepted
    at first contact (without one, an accepted key lives only as long as this object)."""

    def __init__(self, options: SshOptions, *, host_keys: KnownHostStore | None = None) -> None:
        self.options = options
        self.host_keys = host_keys
        self.known = KnownHosts(options.known_hosts)
        self._pool = ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="patchgate-ssh"
        )
        self._learned_loaded: set[str] = set()
        self._keys = PrivateKeys()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _load_learned_keys(self, host: InventoryHost) -> None:
        name = key_name(host.connect_address, host.port)
        if self.host_keys is None or name in self._learned_loaded:
            return
        for learned in await self.host_keys.load(name):
            key = paramiko.PKey.from_type_string(
                learned.key_type, base64.b64decode(learned.key_base64)
            )
            self.known.add(name, key)
        self._learned_loaded.add(name)

    def connection(self, host: InventoryHost, *, accept_new: bool | None = None) -> SshConnection:
        """A (not yet open) connection for ``host``; cheap, safe from any thread.

        The target may accept an unknown key only if the inventory opted in (and never on
        a re-connection: ``accept_new=False``); the jump host never does."""
        user = host.user or default_user()
        target = Endpoint(
            label=host.name,
            address=host.connect_address,
            port=host.port,
            user=user,
            policy=StrictPolicy(
                self.known,
                host=host.name,
                accept_new=host.accept_new_host_key if accept_new is None else accept_new,
            ),
        )
        jump = None
        if host.jump_host:
            juser, jaddr, jport = parse_jump(host.jump_host, user)
            jump = Endpoint(
                label=host.jump_host,
                address=jaddr,
                port=jport,
                user=juser,
                policy=StrictPolicy(self.known, host=host.jump_host, accept_new=False),
            )
        return SshConnection(
            target,
            Credentials(
                pkey=self._keys.for_host(host), agent=bool(host.vars.get("ssh_agent", False))
            ),
            self.known,
            kex=self.options.kex,
            connect_timeout=self.options.connect_timeout,
            jump=jump,
            sudo_password=secret(host, "sudo_password"),
        )

    def _run(
        self, conn: SshConnection, line: str, *, timeout: float | None = None
    ) -> CommandOutput:
        return conn.run(line, timeout=timeout or self.options.command_timeout)

    async def _session(self, host: InventoryHost, work: Callable[[SshConnection], T]) -> T:
        """Open one connection for this host's step, run ``work`` in the pool, close."""
        await self._load_learned_keys(host)
        holder: list[SshConnection] = []

        def job() -> T:
            conn = self.connection(host)
            holder.append(conn)
            try:
                conn.open()
                return work(conn)
            finally:
                conn.close()

        try:
            return await self._in_pool(job)
        finally:
            accepted = holder[0].target.policy.accepted if holder else None
            if accepted is not None:
                await self._learn_key(host, *accepted)

    def _reconnect(self, host: InventoryHost) -> SshConnection:
        """A fresh connection from a pool thread (a known host: no key is accepted here)."""
        conn = self.connection(host, accept_new=False)
        conn.open()
        return conn

    async def _learn_key(self, host: InventoryHost, name: str, key: paramiko.PKey) -> None:
        if self.host_keys is None:
            return
        kept = await self.host_keys.learn(
            name=name,
            host=host.name,
            key_type=key.get_name(),
            key_base64=key.get_base64(),
            fingerprint=fingerprint(key),
        )
        if not kept:
            raise HostKeyRejected(host.name, f"another replica accepted a different key for {name}")

    def _checked(
        self, host: InventoryHost, conn: SshConnection, command: Command, what: str
    ) -> CommandOutput:
        """Run a driver command; back off and retry while the package db is locked."""
        delay = 2.0
        for attempt in range(self.options.lock_retries + 1):
            out = self._run(conn, command.shell())
            outcome = command.outcome(out)
            if outcome == "ok":
                return out
            if outcome == "retry" and attempt < self.options.lock_retries:
                time.sleep(delay)
                delay *= 2
                continue
            raise CommandFailed(
                host.name,
                f"{what} exited {out.exit_code}",
                exit_code=out.exit_code,
                output_tail=out.tail(),
            )
        raise AssertionError("unreachable")

    def _driver(self, host: InventoryHost, conn: SshConnection) -> PackageDriver:
        pm = host.vars.get("package_manager")
        if not pm:
            out = self._run(
                conn, Command(("sh", "-c", FACTS_SCRIPT), sudo=False).shell(), timeout=60
            )
            pm = key_values(out.stdout).get("pm", "")
        return driver_for(PACKAGE_MANAGERS.get(str(pm), str(pm)))


def key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (FACTS_SCRIPT's output) as a dict."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}
