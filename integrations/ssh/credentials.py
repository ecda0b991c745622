"""Secrets from the inventory, private keys parsed once per executor, and the keys
offered to each hop (agent, identity files) as paramiko's ``AuthStrategy``.

A passphrase or sudo password is read from ``host.vars`` (a pydantic ``SecretStr`` or a
plain string) only where it is used; no message built here ever contains one.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
from paramiko.auth_strategy import AuthStrategy, InMemoryPrivateKey
from paramiko.ssh_exception import SSHException

from integrations.ssh.hostkeys import fingerprint
from integrations.ssh.sshconfig import Hop
from workflows.errors import HostUnreachable
from workflows.ports import InventoryHost


def secret(host: InventoryHost, name: str) -> str | None:
    value = host.vars.get(name)
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


class PrivateKeys:
    """Private keys loaded once per (file, passphrase): paramiko otherwise tries each
    key class on every connection (3 parses per host). Files that cannot be used are
    remembered too (a default identity that does not exist is skipped, not re-read)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str | None], paramiko.PKey | str] = {}
        self._lock = threading.Lock()

    def load(self, host: str, path: str, passphrase: str | None) -> paramiko.PKey | str:
        """The key, or why it cannot be used (a sentence without the passphrase)."""
        path = str(Path(path).expanduser())
        with self._lock:
            key = self._keys.get((path, passphrase))
            if key is None:
                try:
                    key = load_key(host, path, passphrase)
                except HostUnreachable as exc:
                    key = str(exc).split(": ", 1)[1]  # without the host's name
                self._keys[(path, passphrase)] = key
        return key


@dataclass
class KeyChoice:
    """The keys offered to one hop, in OpenSSH's order, and what was skipped."""

    keys: list[tuple[str, paramiko.PKey]] = field(default_factory=list)  # (origin, key)
    agent: bool = False
    # IdentitiesOnly: only the agent's keys whose public half is an identity file's.
    agent_only: frozenset[bytes] | None = None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        agent = "ssh-agent" + (" (keys of the IdentityFiles only)" if self.agent_only else "")
        tried = ([agent] if self.agent else []) + [
            f"{origin} ({key.get_name()} {fingerprint(key)})" for origin, key in self.keys
        ]
        return tried + [f"skipped {s}" for s in self.skipped]


def choose_keys(
    keys: PrivateKeys, host: InventoryHost, hop: Hop, *, inventory_key: bool
) -> KeyChoice:
    """OpenSSH's choice: the agent's keys (when ``SSH_AUTH_SOCK`` is set or the inventory
    sets ``ssh_agent``; with IdentitiesOnly only those matching an identity file), then
    the identity files (the inventory's first, then the config's IdentityFile lines, or
    the default identities when none is given). The inventory's key must load; other
    files that do not exist or cannot be decrypted are skipped and named, as OpenSSH
    does (an encrypted one may still be used through the agent)."""
    choice = KeyChoice()
    wants_agent = bool(host.vars.get("ssh_agent", False))
    choice.agent = wants_agent or bool(os.environ.get("SSH_AUTH_SOCK"))
    passphrase = secret(host, "ssh_key_passphrase")
    if choice.agent and hop.identities_only:
        choice.agent_only = frozenset(
            blob for path in hop.identity_files if (blob := public_blob(path)) is not None
        )
    for index, path in enumerate(hop.identity_files):
        required = inventory_key and index == 0
        key = keys.load(host.name, path, passphrase if required else None)
        if isinstance(key, str):
            if required:
                raise HostUnreachable(host.name, key)
            if not (hop.default_identities and "No such file" in key):
                choice.skipped.append(f"{path}: {key}")
            continue
        choice.keys.append((path, key))
    return choice


class KeyAuth(AuthStrategy):  # type: ignore[misc]
    """paramiko's ``AuthStrategy`` (handed to Fabric through ``connect_kwargs``) offering
    a ``KeyChoice``: parsed keys from memory, agent keys first."""

    def __init__(self, username: str, choice: KeyChoice) -> None:
        super().__init__(ssh_config=paramiko.SSHConfig())
        self.username = username
        self.choice = choice
        self._agent: paramiko.Agent | None = None

    def get_sources(self) -> Iterator[InMemoryPrivateKey]:
        if self.choice.agent:
            self._agent = paramiko.Agent()
            only = self.choice.agent_only
            for key in self._agent.get_keys():
                if only is None or key.asbytes() in only:
                    yield InMemoryPrivateKey(self.username, key)
        for _, key in self.choice.keys:
            yield InMemoryPrivateKey(self.username, key)

    def authenticate(self, transport: paramiko.Transport) -> Any:
        try:
            return super().authenticate(transport)
        finally:
            if self._agent is not None:
                self._agent.close()
                self._agent = None


def public_blob(path: str) -> bytes | None:
    """The public key of an identity file, from ``PATH.pub`` (as OpenSSH reads it)."""
    try:
        words = Path(path + ".pub").expanduser().read_text().split()
        return base64.b64decode(words[1]) if len(words) > 1 else None
    except (OSError, ValueError):
        return None


def load_key(host: str, path: str, passphrase: str | None) -> paramiko.PKey:
    """Parse a private key file (any type paramiko knows), decrypting it with the
    passphrase if it is encrypted. Errors never carry the passphrase."""
    data = passphrase.encode() if passphrase else None
    try:
        try:
            return paramiko.PKey.from_path(path, data)
        except TypeError as exc:
            if data is not None and "not encrypted" in str(exc):
                return paramiko.PKey.from_path(path)  # a passphrase it does not need
            raise
    except OSError as exc:
        reason = f"cannot read it ({exc.strerror})"
    except (TypeError, ValueError, SSHException):
        # paramiko reports a missing or wrong passphrase as TypeError/ValueError.
        reason = (
            "wrong passphrase (ssh_key_passphrase) or not a private key"
            if data
            else "it is encrypted: set ssh_key_passphrase, or it is not a private key"
        )
    raise HostUnreachable(host, f"authentication failed: private key {path}: {reason}")
