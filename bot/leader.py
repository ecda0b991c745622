"""The single-leader lock: at most one ``patchgate serve`` runs the engine and the outbox.

PostgreSQL
    A session advisory lock (``pg_try_advisory_lock(LEADER_LOCK_KEY)``) held on a
    dedicated psycopg connection outside the SQLAlchemy pool, with TCP keepalives on
    both ends (client options and the server's ``tcp_keepalives_*``) so a dead peer is
    noticed within ``PATCHGATE_LEADER_TAKEOVER`` seconds. :meth:`LeaderLock.hold` runs a
    heartbeat query every few seconds; any error on that connection, a heartbeat that
    takes too long, or a leader epoch that moved on means the lock may be gone: the
    holder steps down at once (``on_lost``).
SQLite
    One process only: an exclusive non-blocking ``fcntl.flock`` on ``<dbfile>.leader``.
    A second ``serve`` on the same file does not lead and says why
    (:attr:`LeaderLock.refusal`, shown on /healthz).

On acquiring, one statement (an atomic upsert) increments ``leader_state.epoch`` for
``engine`` (inserting the row at 1), and records the holder (``hostname:pid``) and
``acquired_at``. The engine is given that epoch and every write it makes checks it, so
a stale leader's writes are refused even if it has not noticed it lost the lock.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from workflows.db import Database, unit_of_work, utcnow
from workflows.engine import LOCK_NAME
from workflows.models import LeaderState

log = logging.getLogger("patchgate.leader")

# Key of the PostgreSQL advisory lock held by the leader ("PGLeader" in ASCII).
LEADER_LOCK_KEY = 0x5047_4C65_6164_6572

OnLost = Callable[[str], Awaitable[None] | None]


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat_interval(takeover: float) -> float:
    """Seconds between heartbeats (and between a standby's attempts): a few per takeover."""
    return max(0.2, min(5.0, takeover / 3))


async def bump_epoch(db: Database, *, holder: str) -> int:
    """Take over: increment the engine's leader epoch (1 for the first leader). Atomic."""
    now = utcnow()
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    values = insert(LeaderState).values(
        name=LOCK_NAME, epoch=1, holder=holder, acquired_at=now, heartbeat_at=now
    )
    stmt = values.on_conflict_do_update(
        index_elements=[LeaderState.name],
        set_={
            "epoch": LeaderState.epoch + 1,
            "holder": holder,
            "acquired_at": now,
            "heartbeat_at": now,
        },
    ).returning(LeaderState.epoch)
    async with unit_of_work(db) as session:
        epoch = (await session.execute(stmt)).scalar_one()
    return int(epoch)


async def _beat(db: Database, *, epoch: int) -> bool:
    """Record a heartbeat; False if another process has taken over (the epoch moved on)."""
    async with unit_of_work(db) as session:
        result = await session.execute(
            sa.update(LeaderState)
            .where(LeaderState.name == LOCK_NAME, LeaderState.epoch == epoch)
            .values(heartbeat_at=utcnow())
        )
    return bool(getattr(result, "rowcount", 0))


class LeaderLock(abc.ABC):
    """Acquire, hold and release leadership. ``epoch`` is set while this process leads.

    ``refusal`` says why this process is not leading when the reason is worth showing
    (another serve holds the SQLite lock); None otherwise.
    """

    def __init__(self, db: Database, *, takeover: float) -> None:
        self.db = db
        self.takeover = takeover
        self.interval = heartbeat_interval(takeover)
        self.holder = holder_name()
        self.epoch: int | None = None
        self.refusal: str | None = None

    @property
    def is_leader(self) -> bool:
        return self.epoch is not None

    @abc.abstractmethod
    async def acquire(self) -> int | None:
        """Try once, without waiting: the new epoch if this process now leads, else None."""
        ...

    @abc.abstractmethod
    async def hold(self, on_lost: OnLost) -> None:
        """Heartbeat until cancelled; call ``on_lost(reason)`` and return if the lock may
        be gone."""
        ...

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...

    async def _lost(self, on_lost: OnLost, reason: str) -> None:
        log.warning("leader lock lost (epoch %s): %s", self.epoch, reason)
        self.epoch = None
        outcome = on_lost(reason)
        if outcome is not None:
            await outcome


class PostgresLeaderLock(LeaderLock):
    """A session advisory lock on a dedicated connection (see the module docstring)."""

    def __init__(self, db: Database, *, takeover: float) -> None:
        super().__init__(db, takeover=takeover)
        url = make_url(db.urls.async_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def _keepalives(self) -> dict[str, int]:
        idle = max(1, int(self.takeover / 3))
        interval = max(1, int(self.takeover / 9))
        return {"idle": idle, "interval": interval, "count": 3}

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        k = self._keepalives()
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=max(2, int(self.takeover / 3)),
            keepalives=1,
            keepalives_idle=k["idle"],
            keepalives_interval=k["interval"],
            keepalives_count=k["count"],
            tcp_user_timeout=int(self.takeover * 1000 / 2),
            application_name="patchgate-leader",
        )
        # The server's side too: a vanished leader's session (and lock) ends promptly.
        await conn.execute(f"SET tcp_keepalives_idle = {k['idle']}")
        await conn.execute(f"SET tcp_keepalives_interval = {k['interval']}")
        await conn.execute(f"SET tcp_keepalives_count = {k['count']}")
        return conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def acquire(self) -> int | None:
        if self.epoch is not None:
            return self.epoch
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await asyncio.wait_for(self._connect(), timeout=self.takeover)
            cursor = await asyncio.wait_for(
                self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)),
                timeout=self.takeover,
            )
            row = await cursor.fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning(
                "leader lock: cannot reach the database (%s); will retry", str(exc) or "timeout"
            )
            await self._close()
            return None
        if not row or not row[0]:
            return None
        try:
            # Bounded: no heartbeat runs yet, and a database that stops answering now
            # must not keep this process waiting for ever with the lock held.
            self.epoch = await asyncio.wait_for(
                bump_epoch(self.db, holder=self.holder), timeout=self.takeover
            )
        except TimeoutError:
            log.warning("leader lock: the database did not answer the takeover; will retry")
            await self._close()  # closing the session releases the advisory lock
            return None
        except BaseException:
            await self._close()
            raise
        return self.epoch

    async def hold(self, on_lost: OnLost) -> None:
        epoch = self.epoch
        if epoch is None or self._conn is None:
            await self._lost(on_lost, "hold() called without the lock")
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.wait_for(self._conn.execute("SELECT 1"), timeout=self.interval * 2)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._close()
                await self._lost(on_lost, f"the leader connection failed ({str(exc) or 'timeout'})")
                return
            try:
                still_ours = await asyncio.wait_for(
                    _beat(self.db, epoch=epoch), timeout=self.interval * 2
                )
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("leader heartbeat: could not record it (%s)", str(exc) or "timeout")
                continue
            if not still_ours:
                await self._close()
                await self._lost(on_lost, "another process took over (the leader epoch moved on)")
                return

    async def release(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed and self.epoch is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_KEY,)), timeout=5
                )
        self.epoch = None
        await self._close()


class SqliteLeaderLock(LeaderLock):
    """An exclusive ``flock`` on ``<dbfile>.leader``: SQLite supports one leader."""

    def __init__(self, db: Database, *, takeover: float) -> None:
        super().__init__(db, takeover=takeover)
        path = db.urls.sqlite_path
        assert path is not None
        self.database_file = Path(path)
        self.path = Path(f"{path}.leader")
        self._fd: int | None = None

    async def acquire(self) -> int | None:
        if self.epoch is not None:
            return self.epoch
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self.refusal = (
                f"another patchgate serve holds the leader lock on {self.database_file}; "
                "SQLite supports one leader"
            )
            return None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            self.epoch = await bump_epoch(self.db, holder=self.holder)
        except BaseException:
            await self.release()
            raise
        self.refusal = None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.holder}\n".encode())
        return self.epoch

    async def hold(self, on_lost: OnLost) -> None:
        epoch = self.epoch
        if epoch is None:
            await self._lost(on_lost, "hold() called without the lock")
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                still_ours = await _beat(self.db, epoch=epoch)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("leader heartbeat: could not record it (%s)", exc)
                continue
            if not still_ours:
                await self._lost(on_lost, "the leader epoch moved on")
                return

    async def release(self) -> None:
        self.epoch = None
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def leader_lock(db: Database, *, takeover: float) -> LeaderLock:
    """The lock for this database's backend."""
    if db.dialect == "postgresql":
        return PostgresLeaderLock(db, takeover=takeover)
    return SqliteLeaderLock(db, takeover=takeover)
