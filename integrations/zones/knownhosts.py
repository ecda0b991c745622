"""Host keys a zone worker learns at first contact, kept without the database.

Workers hold no database credentials, so the leader's ``known_host_keys`` table is out
of reach. A worker appends a key it accepted (only for a host whose inventory sets
``accept_new_host_key``) to its own known_hosts file (``PATCHGATE_SSH_KNOWN_HOSTS``),
in OpenSSH's format, and logs its fingerprint; the SSH executor reads that file at
start, so the key is verified from then on. Each worker of a zone keeps its own file:
give them the same file (a shared volume) or pre-seed it to avoid a second first contact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from workflows.ports import LearnedHostKey

log = logging.getLogger("patchgate.zones")


class FileKnownHostStore:
    """Implements ``workflows.ports.KnownHostStore`` on an OpenSSH known_hosts file."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._lock = threading.Lock()

    async def load(self, name: str) -> Sequence[LearnedHostKey]:
        # The executor reads the same file itself (its KnownHosts store): nothing more.
        return []

    async def learn(
        self, *, name: str, host: str, key_type: str, key_base64: str, fingerprint: str
    ) -> bool:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as out:
                out.write(f"{name} {key_type} {key_base64}\n")
        log.warning(
            "host key learned at first contact: %s (%s) %s %s, kept in %s",
            host,
            name,
            key_type,
            fingerprint,
            self.path,
        )
        return True
