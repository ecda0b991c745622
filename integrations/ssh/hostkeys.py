"""Host-key verification: known_hosts parsed once per executor (``KnownHosts``), and
one ``HostKeyCheck`` policy per hop deciding about the key the server offered.

Keys are looked up as ``addr`` (port 22), ``[addr]:port`` or the hop's ``HostKeyAlias``.
A changed key is always refused; an unknown one unless the inventory opted in
(``accept_new_host_key``, the target only); an accepted key is handed back to the
executor, which stores it in the database and audits it.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import paramiko
import paramiko.hostkeys
from paramiko.ssh_exception import SSHException

from workflows.errors import ConfigError, HostKeyRejected


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class KnownHosts:
    """One parsed known_hosts file plus keys accepted at run time (thread-safe adds).

    Parsed line by line into a dict (paramiko's ``HostKeys.load`` checks every new line
    against all earlier ones, and ``HostKeys.lookup`` scans every entry per connection:
    quadratic at start-up and linear per host for a large fleet). Hashed entries
    (``|1|salt|hash``) can only be matched by trying each: they stay in a paramiko
    ``HostKeys`` that is scanned only when a name is not found in the dict. Like
    paramiko, no ``*``/``?`` patterns and no ``@cert-authority``/``@revoked`` markers.
    """

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, paramiko.PKey]] = {}
        self._hashed = paramiko.HostKeys()
        if path is None:
            return
        path = path.expanduser()
        if not path.exists():
            return
        with path.open() as lines:
            for number, raw in enumerate(lines, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
                except SSHException:
                    continue  # a key type paramiko does not know, as paramiko's load does
                except paramiko.hostkeys.InvalidHostKey as exc:
                    raise ConfigError(
                        [f"{path}:{number}: not a known_hosts entry ({exc.exc})"]
                    ) from None
                if entry is None or entry.key is None:
                    continue
                plain = [h for h in entry.hostnames if not h.startswith("|1|")]
                for name in plain:
                    self._index.setdefault(name, {}).setdefault(entry.key.get_name(), entry.key)
                if len(plain) != len(entry.hostnames):
                    entry.hostnames = [h for h in entry.hostnames if h.startswith("|1|")]
                    self._hashed._entries.append(entry)

    def lookup(self, name: str) -> dict[str, paramiko.PKey] | None:
        """The keys known for ``name`` (``addr`` or ``[addr]:port``) by type, or None."""
        found = self._index.get(name)
        if found:
            return dict(found)
        if self._hashed._entries:
            keys = self._hashed.lookup(name)
            if keys is not None:
                return {t: keys[t] for t in keys}
        return None

    def known(self, name: str) -> bool:
        return self.lookup(name) is not None

    def add(self, name: str, key: paramiko.PKey) -> None:
        with self._lock:
            self._index.setdefault(name, {})[key.get_name()] = key


class HostKeyCheck(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """The whole host-key decision for one hop, through paramiko's documented extension
    point: Fabric's ``SSHClient`` holds no keys of its own, so paramiko hands every
    server key to this policy. A key known for ``name`` (``[addr]:port`` or the
    ``HostKeyAlias``) in PatchGate's store or the hop's ``UserKnownHostsFile`` must
    match; a known host offering any other key is refused as CHANGED; an unknown key is
    refused unless this hop opted in (the target with ``accept_new_host_key``), and
    then recorded in ``learn_into`` and ``accepted``."""

    def __init__(
        self,
        stores: Sequence[KnownHosts],
        *,
        host: str,
        name: str,
        accept_new: bool,
        where: str = "",
    ) -> None:
        self.stores = tuple(stores)
        self.host = host
        self.name = name
        self.accept_new = accept_new
        self.where = where  # " (jump host X)" for a jump host
        self.accepted: tuple[str, paramiko.PKey] | None = None
        # What the server offered and what was decided, for `patchgate ssh check`.
        self.verdict = "not checked"

    def known_keys(self) -> dict[str, paramiko.PKey] | None:
        for store in self.stores:
            found = store.lookup(self.name)
            if found:
                return found
        return None

    def missing_host_key(
        self, client: paramiko.SSHClient | None, hostname: str, key: paramiko.PKey
    ) -> None:
        known = self.known_keys()
        offered = f"{key.get_name()} {fingerprint(key)}"
        if known:
            expected = known.get(key.get_name())
            if expected is not None and expected == key:
                self.verdict = f"known ({offered})"
                return
            expected = expected or next(iter(known.values()))
            self.verdict = f"CHANGED: offered {offered}, expected {fingerprint(expected)}"
            raise HostKeyRejected(
                self.host,
                f"host key CHANGED for {self.name}{self.where}: offered {key.get_name()} "
                f"{fingerprint(key)}, expected {fingerprint(expected)}; refusing to connect",
            )
        if not self.accept_new:
            self.verdict = f"unknown ({offered}): refused"
            raise HostKeyRejected(
                self.host,
                f"unknown host key {key.get_name()} {fingerprint(key)} for {self.name}"
                f"{self.where} (not in known_hosts; add it, or set accept_new_host_key for "
                "this host)",
            )
        self.stores[0].add(self.name, key)
        self.accepted = (self.name, key)
        self.verdict = f"unknown ({offered}): accepted (accept_new_host_key)"
