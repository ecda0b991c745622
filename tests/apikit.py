"""``serve``'s decisions API (``bot.api``) for tests: on an ephemeral port, over a real
database, built from server-side Settings; and personal tokens issued straight into the
database (as ``patchgate token create`` does).

:func:`api_server` runs on the test's own event loop (async tests that also drive Slack);
:class:`ThreadedApi` runs it in a thread with its own loop, for synchronous tests that run
``patchgate`` in-process (``bot.cli.main.main`` calls ``asyncio.run``) or as a process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.api import Api, ApiDeps, NoGroups
from bot.settings import Settings
from workflows import tokens
from workflows.clock import FileClock, SystemClock
from workflows.db import Database, create_database, unit_of_work
from workflows.ports import Clock, Directory

REPO = Path(__file__).resolve().parents[1]


def api_deps(
    settings: Settings,
    db: Database,
    *,
    clock: Clock | None = None,
    directory: Directory | None = None,
) -> ApiDeps:
    if clock is None:
        clock = FileClock(settings.test_clock_file) if settings.test_clock_file else SystemClock()
    return ApiDeps(settings=settings, db=db, clock=clock, directory=directory or NoGroups())


@asynccontextmanager
async def api_server(deps: ApiDeps) -> AsyncIterator[str]:
    """The API on 127.0.0.1 (a free port); yields its base URL (PATCHGATE_SERVER_URL)."""
    app = web.Application()
    Api(deps).register(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ThreadedApi:
    """:func:`api_server` in a thread of its own, over ``settings`` (the SERVER's)."""

    def __init__(self, settings: Settings, *, directory: Directory | None = None) -> None:
        self.settings = settings
        self.directory = directory
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        db = create_database(self.settings.database)
        try:
            async with api_server(api_deps(self.settings, db, directory=self.directory)) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            await db.dispose()

    def __enter__(self) -> ThreadedApi:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


async def issue_token_async(
    db: Database,
    user: str,
    *,
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(days=30),
    label: str | None = None,
) -> str:
    now = now or dt.datetime.now(dt.UTC)
    async with unit_of_work(db) as session:
        issued = await tokens.issue(
            session,
            user_id=user,
            expires_at=now + lifetime,
            label=label,
            created_by="admin:test",
            now=now,
        )
    return issued.token


def issue_token(database_url: str, user: str, **kwargs: object) -> str:
    """A token for ``user`` in the database at ``database_url`` (from synchronous tests)."""

    async def go() -> str:
        db = create_database(database_url)
        try:
            return await issue_token_async(db, user, **kwargs)  # type: ignore[arg-type]
        finally:
            await db.dispose()

    return asyncio.run(go())


def client_env(server_url: str, token: str, **extra: str) -> dict[str, str]:
    """A CLI process's environment for decisions: the server and the token, nothing else of
    PatchGate's (no database URL: decisions need none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(PATCHGATE_SERVER_URL=server_url, PATCHGATE_TOKEN=token, PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def run_cli(
    env: Mapping[str, str], *args: str, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def run_cli_async(env: Mapping[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli.main",
        *args,
        env=dict(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def serve_for_env(
    monkeypatch: Any, stack: ExitStack, user: str, *, now: dt.datetime | None = None
) -> ThreadedApi:
    """For tests that run ``patchgate`` in-process from a monkeypatched environment: serve's
    API with Settings read from that environment as it is now (the server's), and the
    environment then pointed at it with a token for ``user``."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    api = stack.enter_context(ThreadedApi(settings))
    token = issue_token(settings.database_url, user, now=now)
    monkeypatch.setenv("PATCHGATE_SERVER_URL", api.url)
    monkeypatch.setenv("PATCHGATE_TOKEN", token)
    return api
