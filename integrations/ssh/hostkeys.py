"""Host-key verification: known_hosts parsed once per executor, shared by every
connection through one MissingHostKeyPolicy.

paramiko looks keys up as ``addr`` (port 22) or ``[addr]:port`` and raises
BadHostKeyException itself when a known host offers a different key (a changed key is
always refused). The policy below decides only about hosts it has no key for: refuse,
naming host and fingerprint, unless the inventory opted in (``accept_new_host_key``);
an accepted key is handed back to the executor, which stores it in the database and
audits it.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import paramiko

from workflows.errors import HostKeyRejected


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class KnownHosts:
    """One parsed known_hosts file plus keys accepted at run time (thread-safe adds)."""

    def __init__(self, path: Path | None) -> None:
        self.keys = paramiko.HostKeys()
        self._lock = threading.Lock()
        if path is not None:
            path = path.expanduser()
            if path.exists():
                self.keys.load(str(path))

    def known(self, name: str) -> bool:
        return self.keys.lookup(name) is not None

    def add(self, name: str, key: paramiko.PKey) -> None:
        with self._lock:
            self.keys.add(name, key.get_name(), key)


class StrictPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuses unknown keys, unless this connection's host opted in (then records it)."""

    def __init__(self, known: KnownHosts, *, host: str, accept_new: bool) -> None:
        self.known = known
        self.host = host
        self.accept_new = accept_new
        self.accepted: tuple[str, paramiko.PKey] | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise HostKeyRejected(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint(key)} for {hostname} "
                "(not in known_hosts; add it, or set accept_new_host_key for this host)",
            )
        self.known.add(hostname, key)
        self.accepted = (hostname, key)
