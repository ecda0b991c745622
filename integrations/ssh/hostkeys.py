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
    """One parsed known_hosts file plus keys accepted at run time (thread-safe adds).

    ``lookup`` is a dict access for plain entries (paramiko's ``HostKeys.lookup`` scans
    every entry, matching each name: at 500 hosts a visible share of the client CPU per
    connection); hashed entries (``|1|salt|hash``) can only be matched by paramiko's scan,
    which is used when the file has any. Like paramiko, no ``*``/``?`` patterns.
    """

    def __init__(self, path: Path | None) -> None:
        self.keys = paramiko.HostKeys()
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, paramiko.PKey]] = {}
        self._scan = False
        if path is not None:
            path = path.expanduser()
            if path.exists():
                self.keys.load(str(path))
        for entry in self.keys._entries:
            for name in entry.hostnames:
                if name.startswith("|1|"):
                    self._scan = True
                else:
                    self._index.setdefault(name, {}).setdefault(entry.key.get_name(), entry.key)

    def lookup(self, name: str) -> dict[str, paramiko.PKey] | None:
        """The keys known for ``name`` (``addr`` or ``[addr]:port``) by type, or None."""
        found = self._index.get(name)
        if found:
            return dict(found)
        if self._scan:
            keys = self.keys.lookup(name)
            if keys is not None:
                return {t: keys[t] for t in keys}
        return None

    def known(self, name: str) -> bool:
        return self.lookup(name) is not None

    def add(self, name: str, key: paramiko.PKey) -> None:
        with self._lock:
            self.keys.add(name, key.get_name(), key)
            self._index.setdefault(name, {})[key.get_name()] = key


class StrictPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Refuses unknown keys, unless this connection's host opted in (then records it)."""

    def __init__(self, known: KnownHosts, *, host: str, accept_new: bool) -> None:
        self.known = known
        self.host = host
        self.accept_new = accept_new
        self.accepted: tuple[str, paramiko.PKey] | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient | None, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise HostKeyRejected(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint(key)} for {hostname} "
                "(not in known_hosts; add it, or set accept_new_host_key for this host)",
            )
        self.known.add(hostname, key)
        self.accepted = (hostname, key)
