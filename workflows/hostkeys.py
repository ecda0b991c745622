"""SSH host keys accepted at first contact: the ``KnownHostStore`` port over the database.

The inventory may let a host's unknown key be accepted once (``accept_new_host_key``);
the key is then kept in ``known_host_keys`` so every replica, and every later run,
refuses a changed one. Keeping it writes an ``ssh.host_key.accepted`` audit event in the
same unit of work, so no key is trusted without a record of when and for which host.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from workflows import audit
from workflows.db import Database, read_only, unit_of_work
from workflows.models import KnownHostKey
from workflows.ports import LearnedHostKey

__all__ = ["DbKnownHostStore"]


class DbKnownHostStore:
    """Implements ``workflows.ports.KnownHostStore`` on the ``known_host_keys`` table."""

    def __init__(self, db: Database, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = db
        self._clock = clock

    async def load(self, name: str) -> Sequence[LearnedHostKey]:
        async with read_only(self.db) as session:
            rows = (
                await session.scalars(sa.select(KnownHostKey).where(KnownHostKey.name == name))
            ).all()
        return [LearnedHostKey(row.name, row.key_type, row.key_base64) for row in rows]

    async def learn(
        self, *, name: str, host: str, key_type: str, key_base64: str, fingerprint: str
    ) -> bool:
        now = self._clock() if self._clock else dt.datetime.now(dt.UTC)
        async with unit_of_work(self.db) as session:
            existing = await session.scalar(
                sa.select(KnownHostKey).where(
                    KnownHostKey.name == name, KnownHostKey.key_type == key_type
                )
            )
            if existing is not None:
                return existing.key_base64 == key_base64
            session.add(
                KnownHostKey(
                    name=name,
                    host=host,
                    key_type=key_type,
                    key_base64=key_base64,
                    fingerprint=fingerprint,
                    accepted_at=now,
                )
            )
            await audit.append(
                session,
                kind="ssh.host_key.accepted",
                data={
                    "host": host,
                    "name": name,
                    "key_type": key_type,
                    "fingerprint": fingerprint,
                },
                at=now,
                actor="patchgate",
            )
        return True
