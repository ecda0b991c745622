"""Secrets from the inventory and private keys, parsed once per executor.

A passphrase or sudo password is read from ``host.vars`` (a pydantic ``SecretStr`` or a
plain string) only where it is used; no message built here ever contains one.
"""

from __future__ import annotations

import threading
from pathlib import Path

import paramiko
from paramiko.ssh_exception import SSHException

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
    key class on every connection (3 parses per host)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str | None], paramiko.PKey] = {}
        self._lock = threading.Lock()

    def for_host(self, host: InventoryHost) -> paramiko.PKey | None:
        if not host.private_key_file:
            return None
        passphrase = secret(host, "ssh_key_passphrase")
        path = str(Path(host.private_key_file).expanduser())
        with self._lock:
            key = self._keys.get((path, passphrase))
            if key is None:
                key = load_key(host.name, path, passphrase)
                self._keys[(path, passphrase)] = key
        return key


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
