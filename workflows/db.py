"""Database plumbing: URL normalisation, engines, sessions, units of work.

SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` for write transactions, so
concurrent writers queue instead of failing; reads use a deferred ``BEGIN``. A process's
own SQLite writers also take turns, first come first served, before ``BEGIN IMMEDIATE``
(:func:`unit_of_work`): SQLite's busy handler polls, so a writer that keeps coming back
(the engine, at thousands of hosts) would otherwise starve the leader heartbeat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

UTC = dt.UTC
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Seconds a new PostgreSQL connection may take to be established (libpq
# ``connect_timeout``); without one, a server that accepts the TCP connection and never
# answers holds every pool checkout for ever. ``?connect_timeout=N`` in the URL wins.
POSTGRES_CONNECT_TIMEOUT = 10
# Connections the pool keeps, and how many more it opens under load. The engine holds at
# most workflows.engine's ENGINE_DB_SLOTS (10) of them however large a batch is, so
# /healthz, Slack's acks and the outbox always find one.
POOL_SIZE = 20
POOL_OVERFLOW = 10

T = TypeVar("T")


@dataclass(frozen=True)
class DatabaseURLs:
    """The one database setting, in the two forms the program needs."""

    async_url: str
    sync_url: str
    dialect: str  # "sqlite" or "postgresql"
    # The audit keys (workflows.audit.AuditKeys) every session of this database appends
    # with (session.info["audit_keys"]); None: events are appended unkeyed. Typed Any:
    # this module sits below the audit room.
    audit_keys: Any = field(default=None, repr=False, compare=False)

    @property
    def sqlite_path(self) -> str | None:
        if self.dialect != "sqlite":
            return None
        return make_url(self.sync_url).database


def normalise_database_url(url: str) -> DatabaseURLs:
    """Map any accepted spelling of the database URL to its async and sync forms.

    Accepted: ``sqlite:///file.db``, ``sqlite+aiosqlite:///…``, ``postgresql://…``,
    ``postgres://…``, ``postgresql+psycopg://…``. Raises ValueError otherwise.
    """
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError) as exc:
        raise ValueError("not a valid database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "not a valid database URL: SQLite needs a file path (sqlite:///patchgate.db)"
            )
        return DatabaseURLs(
            async_url=parsed.set(drivername="sqlite+aiosqlite").render_as_string(
                hide_password=False
            ),
            sync_url=parsed.set(drivername="sqlite").render_as_string(hide_password=False),
            dialect="sqlite",
        )
    if backend in ("postgresql", "postgres"):
        if not parsed.database:
            raise ValueError("not a valid database URL: no database name")
        fixed = parsed.set(drivername="postgresql+psycopg")
        text = fixed.render_as_string(hide_password=False)
        return DatabaseURLs(async_url=text, sync_url=text, dialect="postgresql")
    raise ValueError(
        f"not a valid database URL: unsupported backend {backend!r} (use sqlite or postgresql)"
    )


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("patchgate_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass
class WriteWaits:
    """How long this process's writers waited for the database: from entering
    :func:`unit_of_work` to its transaction begun (the SQLite write turn and ``BEGIN
    IMMEDIATE``, or a pool connection). Exposed on ``/metrics``."""

    longest: float = 0.0  # seconds, since the process started
    total: int = 0
    over_1s: int = 0

    def record(self, seconds: float) -> None:
        self.total += 1
        self.longest = max(self.longest, seconds)
        if seconds > 1.0:
            self.over_1s += 1


@dataclass
class Database:
    """An engine and its two session factories (write: immediate; read: deferred)."""

    urls: DatabaseURLs
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    # SQLite: the write turn of this process's writers, per event loop (see unit_of_work)
    turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False
    )
    write_waits: WriteWaits = field(default_factory=WriteWaits, repr=False, compare=False)

    @property
    def dialect(self) -> str:
        return self.urls.dialect

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(url: str | DatabaseURLs, *, echo: bool = False) -> Database:
    urls = normalise_database_url(url) if isinstance(url, str) else url
    kwargs: dict[str, Any] = {"echo": echo, "pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    if urls.dialect == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
        given = make_url(urls.async_url).query.get("connect_timeout")
        kwargs["connect_args"] = {
            "connect_timeout": given or POSTGRES_CONNECT_TIMEOUT,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
    engine = create_async_engine(urls.async_url, **kwargs)
    if urls.dialect == "sqlite":
        _install_sqlite_hooks(engine.sync_engine)
    reader = engine.execution_options(patchgate_readonly=True)
    info = {} if urls.audit_keys is None else {"audit_keys": urls.audit_keys}
    return Database(
        urls=urls,
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False, info=info),
        read_sessions=async_sessionmaker(reader, expire_on_commit=False, info=info),
    )


# The databases whose write turn this task holds (a nested unit of work takes none).
_HOLDING: ContextVar[tuple[int, ...]] = ContextVar("patchgate_sqlite_turn", default=())


@asynccontextmanager
async def _write_turn(db: Database) -> AsyncIterator[None]:
    if db.dialect != "sqlite" or id(db) in _HOLDING.get():
        yield
        return
    loop = asyncio.get_running_loop()
    turn = db.turns.get(loop)
    if turn is None:
        turn = db.turns[loop] = asyncio.Lock()
    try:
        # Never longer than SQLite's own busy timeout: past it, go on without the turn
        # and let SQLite's busy handler decide, as without this queue.
        async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
            await turn.acquire()
    except TimeoutError:
        yield
        return
    token = _HOLDING.set((*_HOLDING.get(), id(db)))
    try:
        yield
    finally:
        _HOLDING.reset(token)
        turn.release()


def holds_write_turn(db: Database) -> bool:
    """Whether this task holds ``db``'s write turn (it is inside a unit of work)."""
    return id(db) in _HOLDING.get()


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[AsyncSession]:
    """One write transaction: commits on success, rolls back on any error. On SQLite it
    begins when this process's writers before it have finished (first come, first served).
    How long it waited to begin is recorded in ``db.write_waits``."""
    started = time.monotonic()
    async with _write_turn(db), db.sessions() as session, session.begin():
        await session.connection()  # BEGIN (IMMEDIATE) now, to time the wait for it
        db.write_waits.record(time.monotonic() - started)
        yield session


@asynccontextmanager
async def read_only(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.read_sessions() as session, session.begin():
        yield session


# Values per ``IN (...)`` list: each is a bound parameter, and drivers bound a statement's
# parameters (SQLite 32,766, PostgreSQL 65,535): a query over a whole fleet goes in parts.
IN_CHUNK = 500


def in_parts(values: Iterable[T]) -> Iterator[list[T]]:
    """``values`` in lists of at most :data:`IN_CHUNK` (none for none)."""
    items = list(values)
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


# Rows per part when a whole ring's or fleet's rows are read (:func:`read_in_parts`).
READ_PART = 500


async def in_parts_of(
    session: AsyncSession, statement: sa.Executable, *, part: int = READ_PART, scalars: bool = True
) -> AsyncIterator[Sequence[Any]]:
    """``statement``'s rows (its first column's values with ``scalars``), ``part`` at a
    time from a server-side cursor: turning a 10,000-row result into objects is no
    longer one stretch of the event loop (a Slack ack waited behind it), it is one
    stretch per part, with other tasks running between them; a caller that works on
    each part as it comes keeps its own work in such stretches too.

    For plain reads of a table (a filter, an order): PostgreSQL plans a cursor for its
    first rows (``cursor_tuple_fraction``), and the time-to-patch join planned that
    way took 37 s instead of 0.24 s."""
    statement = statement.execution_options(yield_per=part)
    result = await (session.stream_scalars(statement) if scalars else session.stream(statement))
    async for chunk in result.partitions(part):
        yield chunk


async def read_in_parts(
    session: AsyncSession, statement: sa.Executable, *, part: int = READ_PART, scalars: bool = True
) -> list[Any]:
    """All of :func:`in_parts_of`'s rows, in a list."""
    rows: list[Any] = []
    async for chunk in in_parts_of(session, statement, part=part, scalars=scalars):
        rows.extend(chunk)
    return rows


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)
