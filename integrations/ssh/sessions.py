"""How the SSH executor reaches a host: one connection per host per step, in a pool.

- ``SshSessions.connection`` builds an ``SshConnection`` (Fabric ``Connection`` chain:
  the route from the user's OpenSSH config and the inventory, sshconfig.py; strict host
  keys per hop, keys per hop, sudo password; see connection.py). All blocking work runs
  in one ThreadPoolExecutor sized ``PATCHGATE_SSH_CONCURRENCY``.
- Host keys: known_hosts parsed once (``KnownHosts``; each hop's UserKnownHostsFile
  too), checked per hop by a ``HostKeyCheck``. Keys accepted at first contact
  (inventory opt-in, the target only) are kept through the ``KnownHostStore`` port (the
  domain stores and audits them); a changed key is always refused.
- ``_run``: Fabric's ``Connection.run``/``sudo``; read-only probes (``probe=True``) take
  a session channel of the same transport (measured: docs/design-notes.md, issue 17).
- ``_checked`` runs a driver command, backing off while the package database is locked;
  ``_driver`` picks the host's package driver. The port's methods are in executor.py.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import paramiko

from integrations.packages import Command, CommandOutput, PackageDriver, driver_for
from integrations.ssh.connection import HopLogin, SshConnection, fabric_config
from integrations.ssh.credentials import PrivateKeys, choose_keys, secret
from integrations.ssh.hostkeys import HostKeyCheck, KnownHosts, fingerprint
from integrations.ssh.sshconfig import Hop, OpenSshConfig, Route, route
from workflows.errors import CommandFailed, HostKeyRejected
from workflows.ports import InventoryHost, KnownHostStore

T = TypeVar("T")
log = logging.getLogger(__name__)

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
    # The user's OpenSSH config (PATCHGATE_SSH_CONFIG); None: ignore it.
    ssh_config: Path | None = Path("~/.ssh/config")
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
        self.ssh_config = OpenSshConfig(options.ssh_config)
        self._fabric_config = fabric_config()
        self._known_files: dict[str, KnownHosts] = {}
        self._known_lock = threading.Lock()
        self._warned: set[str] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def load_learned_keys(self, host: InventoryHost) -> None:
        """Keys learned into the database earlier, for every hop on the host's route."""
        if self.host_keys is None:
            return
        for hop in self.route(host).hops:
            name = hop.host_key_name
            if name in self._learned_loaded:
                continue
            for learned in await self.host_keys.load(name):
                key = paramiko.PKey.from_type_string(
                    learned.key_type, base64.b64decode(learned.key_base64)
                )
                self.known.add(name, key)
            self._learned_loaded.add(name)

    def known_for(self, hop: Hop) -> list[KnownHosts]:
        """PatchGate's store first (keys are learned into it), then the hop's
        ``UserKnownHostsFile`` files, each parsed once."""
        stores = [self.known]
        for path in hop.known_hosts_files:
            with self._known_lock:
                store = self._known_files.get(path)
                if store is None:
                    store = self._known_files[path] = KnownHosts(Path(path))
            stores.append(store)
        return stores

    def route(self, host: InventoryHost, *, explain: bool = False) -> Route:
        found = route(host, self.ssh_config, explain=explain)
        for warning in found.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("SSH config: %s", warning)
        return found

    def connection(self, host: InventoryHost, *, accept_new: bool | None = None) -> SshConnection:
        """A (not yet open) connection for ``host``; cheap, safe from any thread.

        The target may accept an unknown key only if the inventory opted in (and never on
        a re-connection: ``accept_new=False``); a jump host never does."""
        path = self.route(host)
        logins = []
        for hop in path.hops:
            is_target = hop is path.target
            check = HostKeyCheck(
                self.known_for(hop),
                host=host.name,
                name=hop.host_key_name,
                accept_new=is_target
                and (host.accept_new_host_key if accept_new is None else accept_new),
                where="" if is_target else f" (jump host {hop.label})",
            )
            choice = choose_keys(self._keys, host, hop, inventory_key=bool(host.private_key_file))
            logins.append(HopLogin(hop=hop, check=check, choice=choice))
        return SshConnection(
            host.name,
            logins,
            config=self._fabric_config,
            kex=self.options.kex,
            connect_timeout=self.options.connect_timeout,
            sudo_password=secret(host, "sudo_password"),
        )

    def _run(
        self, conn: SshConnection, line: str, *, timeout: float | None = None, probe: bool = False
    ) -> CommandOutput:
        """Through Fabric's ``Connection.run``/``sudo``; ``probe``: a read-only command on
        the fast channel path (connection.py, channel.py)."""
        limit = timeout or self.options.command_timeout
        return conn.probe(line, timeout=limit) if probe else conn.run(line, timeout=limit)

    async def _session(self, host: InventoryHost, work: Callable[[SshConnection], T]) -> T:
        """Open one connection for this host's step, run ``work`` in the pool, close."""
        await self.load_learned_keys(host)
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
            accepted = holder[0].accepted if holder else None
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
        self,
        host: InventoryHost,
        conn: SshConnection,
        command: Command,
        what: str,
        *,
        probe: bool = False,
    ) -> CommandOutput:
        """Run a driver command; back off and retry while the package db is locked."""
        delay = 2.0
        for attempt in range(self.options.lock_retries + 1):
            out = self._run(conn, command.shell(), probe=probe)
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
            line = Command(("sh", "-c", FACTS_SCRIPT), sudo=False).shell()
            out = self._run(conn, line, timeout=60, probe=True)
            pm = key_values(out.stdout).get("pm", "")
        return driver_for(PACKAGE_MANAGERS.get(str(pm), str(pm)))


def key_values(text: str) -> dict[str, str]:
    """``key=value`` lines (FACTS_SCRIPT's output) as a dict."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}
