"""/metrics answers a snapshot refreshed in the background (issue 15, item 5): scrapes
never read the database, the snapshot follows the database at the interval, a failed
refresh is a 503 (not a stale snapshot passed off as current), and with
PATCHGATE_METRICS_PORT a real ``patchgate serve`` serves /healthz and /metrics on that
port only."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.metrics_snapshot import MetricsSnapshot
from bot.server import SNAPSHOT, ServerDeps, build_web_app, start_server
from tests.enginekit import Rig
from tests.integration.test_cli_rollout import REPO
from workflows.db import Database, create_database


class Leadership:
    is_leader = True
    epoch: int | None = 3
    refusal: str | None = None


def rollouts_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "patchgate_rollouts":
            return sum(s.value for s in family.samples)
    raise AssertionError("no patchgate_rollouts")


@pytest_asyncio.fixture
async def served(db: Database) -> AsyncIterator[tuple[str, MetricsSnapshot]]:
    deps = ServerDeps(
        db=db,
        leadership=Leadership(),
        metrics=Metrics(),
        metrics_interval=3600,
        observability_rate=10_000,  # the pacing has its own test
    )
    app = build_web_app(deps)
    runner = await start_server(app, host="127.0.0.1", port=0)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app[SNAPSHOT]
    finally:
        await runner.cleanup()


async def test_fifty_scrapes_at_once_read_no_database_row(
    db: Database, served: tuple[str, MetricsSnapshot]
) -> None:
    url, snapshot = served
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics") as first:  # waits for the first snapshot
            assert first.status == 200
            before = rollouts_total(await first.text())
        await Rig(db).start()  # the database changes; the snapshot has not been refreshed
        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:

            async def scrape() -> tuple[int, str]:
                async with http.get(url + "/metrics") as response:
                    return response.status, await response.text()

            answers = await asyncio.gather(*(scrape() for _ in range(50)))
        finally:
            sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert statements == []
        assert {status for status, _ in answers} == {200}
        assert {rollouts_total(text) for _, text in answers} == {before}
        await snapshot.refresh()  # what the background task does every interval
        async with http.get(url + "/metrics") as response:
            text = await response.text()
        assert rollouts_total(text) == before + 1
        assert "patchgate_metrics_refreshed_timestamp_seconds" in text


async def test_the_background_task_follows_the_database_at_its_interval(db: Database) -> None:
    deps = ServerDeps(db=db, leadership=Leadership(), metrics=Metrics(), metrics_interval=0.1)
    app = build_web_app(deps)
    runner = await start_server(app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                before = rollouts_total(await response.text())
            await Rig(db).start()
            for _ in range(100):
                await asyncio.sleep(0.05)
                async with http.get(url) as response:
                    if rollouts_total(await response.text()) == before + 1:
                        break
            else:
                raise AssertionError("the snapshot never showed the new rollout")
        assert app[SNAPSHOT].refreshes >= 2
    finally:
        await runner.cleanup()


async def test_scrapers_asking_back_to_back_are_paced_to_twenty_answers_a_second(
    served: tuple[str, MetricsSnapshot], db: Database
) -> None:
    deps = ServerDeps(db=db, leadership=Leadership(), metrics=Metrics(), metrics_interval=3600)
    app = build_web_app(deps)  # the default rate: 20 a second, 2 s of waiting at most
    runner = await start_server(app, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    answers: list[tuple[float, int]] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:  # the first snapshot is there
                assert response.status == 200
            await asyncio.sleep(0.2)
            started = time.monotonic()

            async def scraper() -> None:  # asks again as soon as it is answered
                while time.monotonic() - started < 2.0:
                    async with http.get(url) as response:
                        answers.append((time.monotonic() - started, response.status))

            await asyncio.gather(*(scraper() for _ in range(50)))
    finally:
        await runner.cleanup()
    served_200 = [at for at, status in answers if status == 200]
    assert {status for _, status in answers} <= {200, 429}
    # 2 s at 20 a second, plus the answers that were waiting for their turn at the end
    assert 30 <= len(served_200) <= 2.0 * 20 + 2 * 20 + 2, len(served_200)
    assert len(answers) < 200, "back-to-back scrapers were not slowed down"


async def test_a_failed_refresh_is_a_503_with_its_reason() -> None:
    away = create_database("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1")
    snapshot = MetricsSnapshot(Metrics(), away, Leadership())
    try:
        await snapshot.refresh()
    finally:
        await away.dispose()
    body, problem = await snapshot.current()
    assert body is None and problem is not None and "database unreachable" in problem


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_with_a_metrics_port_serve_answers_healthz_and_metrics_there_only(tmp_path: Path) -> None:
    slack_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env |= {
        "PATCHGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}",
        "PATCHGATE_PLANS_DIR": str(REPO / "examples/plans"),
        "PATCHGATE_INVENTORY": str(REPO / "examples/inventory"),
        "PATCHGATE_HOST": "127.0.0.1",
        "PATCHGATE_PORT": str(slack_port),
        "PATCHGATE_METRICS_PORT": str(metrics_port),
        "PYTHONPATH": str(REPO),
    }
    run = [sys.executable, "-m", "bot.cli.main"]
    subprocess.run([*run, "db", "upgrade"], env=env, cwd=tmp_path, check=True, timeout=60)
    serve = subprocess.Popen([*run, "serve"], env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"http://127.0.0.1:{metrics_port}/healthz") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and serve.poll() is None, "serve did not start"
            time.sleep(0.2)
        assert get(f"http://127.0.0.1:{metrics_port}/metrics") == 200
        assert get(f"http://127.0.0.1:{slack_port}/healthz") == 404
        assert get(f"http://127.0.0.1:{slack_port}/metrics") == 404
    finally:
        serve.terminate()
        serve.wait(timeout=30)
