"""The audit keys: the HMAC-SHA256 key that MACs every appended event (and the head and
prune checkpoints), and the retired keys that still verify what they MAC'd.

Keys are named by a short, non-secret id (:func:`key_id`) stored with every event, the
head and every checkpoint, so a rotated key is told apart from tampering. The current
key comes from PATCHGATE_AUDIT_KEY, or from a key file (PATCHGATE_AUDIT_KEY_FILE; on
SQLite by default a file beside the database) that is generated, mode 0600, the first
time an event is appended; verifying never creates it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workflows.errors import ConfigError

MIN_KEY_CHARS = 32


def key_id(key: bytes) -> str:
    """A short, non-secret name for a key (so a key change is told apart from tampering)."""
    return hmac.new(key, b"patchgate audit key id", hashlib.sha256).hexdigest()[:16]


def event_mac(key: bytes, prev_hash: str, body: str) -> str:
    """HMAC-SHA256(key, prev + body), hex: a keyed event's ``hash``."""
    return hmac.new(key, (prev_hash + body).encode("utf-8"), hashlib.sha256).hexdigest()


def head_mac(key: bytes, *, count: int, last_event_id: int, last_hash: str) -> str:
    """The head's MAC (a domain of its own, so no event MAC can stand in for it)."""
    text = f"patchgate-audit-head/1|{count}|{last_event_id}|{last_hash}"
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([f"PATCHGATE_AUDIT_KEY_FILE: {path}: {exc.strerror or exc}"]) from None
    if len(text) < MIN_KEY_CHARS:
        raise ConfigError(
            [f"PATCHGATE_AUDIT_KEY_FILE: {path}: the key must be at least 32 characters"]
        )
    return text.encode("utf-8")


def _create_key_file(path: Path) -> None:
    """Write a new random key, 0600, without ever replacing an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    except OSError as exc:
        raise ConfigError(
            [f"PATCHGATE_AUDIT_KEY_FILE: cannot create {path}: {exc.strerror or exc}"]
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# The one line serve and appending commands refuse with on PostgreSQL without a key.
KEY_REQUIRED = (
    "PATCHGATE_AUDIT_KEY (or PATCHGATE_AUDIT_KEY_FILE): required on PostgreSQL, every "
    "audit event is MAC'd with it (`openssl rand -hex 32`); PATCHGATE_AUDIT_UNKEYED=true "
    "appends unkeyed instead, which lets a database writer rewrite the log unseen"
)


@dataclass(frozen=True)
class KeyRequired:
    """In place of :class:`AuditKeys` in a session's info: this database must not be
    appended to unkeyed (PostgreSQL without a key and without PATCHGATE_AUDIT_UNKEYED).
    Reads go on unkeyed; :func:`workflows.audit.append` refuses with ``problem``."""

    problem: str = KEY_REQUIRED


class AuditKeys:
    """The current key (given, or read from / generated into a file) and the old ones.

    Its repr names key ids only, never a key."""

    def __init__(
        self,
        *,
        key: bytes | None = None,
        key_file: Path | None = None,
        old_keys: Iterable[bytes] = (),
    ) -> None:
        if (key is None) == (key_file is None):
            raise ValueError("AuditKeys needs exactly one of key= and key_file=")
        self._key = key
        self._file = key_file
        self._old = {key_id(k): k for k in old_keys}

    def __repr__(self) -> str:
        source = "key" if self._file is None else f"file {self._file}"
        return f"AuditKeys({source}, old ids {sorted(self._old)})"

    @property
    def key_file(self) -> Path | None:
        return self._file

    def current(self) -> bytes:
        """The key new events are MAC'd with (a missing key file is generated)."""
        if self._key is None:
            assert self._file is not None
            if not self._file.exists():
                _create_key_file(self._file)
            self._key = _read_key_file(self._file)
        return self._key

    def _loaded(self) -> bytes | None:
        if self._key is None and self._file is not None and self._file.exists():
            self._key = _read_key_file(self._file)
        return self._key

    def lookup(self, kid: str) -> bytes | None:
        """The key with this id (current or old), or None if none is known."""
        current = self._loaded()
        if current is not None and key_id(current) == kid:
            return current
        return self._old.get(kid)

    def configured(self) -> bytes | None:
        """The current key if it exists now (a key file not yet generated: None)."""
        return self._loaded()

    def known_ids(self) -> list[str]:
        current = self._loaded()
        ids = [] if current is None else [key_id(current)]
        return ids + sorted(self._old)

    def has_current(self) -> bool:
        """True when a current key is configured (a key file not yet generated counts)."""
        return self._key is not None or self._file is not None


def hash_matches(
    keys: AuditKeys | None, *, prev_hash: str, body: str, stored: str, kid: str | None
) -> bool | None:
    """Whether a row's stored hash is right: SHA-256 when unkeyed, the MAC with the key its
    id names; None when that key is not known here (it cannot be checked)."""
    if kid is None:
        return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest() == stored
    key = None if keys is None else keys.lookup(kid)
    if key is None:
        return None
    return hmac.compare_digest(event_mac(key, prev_hash, body), stored)
