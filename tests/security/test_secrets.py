"""Secrets never show: a full rollout by a real ``patchgate serve`` (PostgreSQL, the
recording fleet, the Slack and Jira emulators) with a recognisable value in every secret
setting, then every place a secret could leak is searched for it: the DEBUG log, the
Slack messages and Jira tickets the emulators recorded, every row of every table (audit
log, outbox payloads, rollouts...), the CLI's output, and error messages (a database URL
with a password that cannot connect, a Jira that refuses the token)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
import yaml

from integrations.inventory import FileInventory
from integrations.testing.executor import RecordingExecutor
from tests.dbutil import fresh_database_url
from tests.e2e.harness import EXAMPLE_INVENTORY, OPERATOR, ServeProcess, base_env, patchgate
from tests.e2e.test_serve_headless import drive_to_the_end, start_weekly, weekly_plan
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.slack.conftest import signed_request
from workflows.db import create_database, read_only
from workflows.engine import layout_rollout
from workflows.models import Base, OutboxItem

MARK = "PGSECRET"
SECRETS = {
    "PATCHGATE_SLACK_BOT_TOKEN": f"xoxb-{MARK}-bot-5b0c1e9a",
    "PATCHGATE_SLACK_SIGNING_SECRET": f"{MARK}-signing-9d2f7a11",
    "PATCHGATE_JIRA_TOKEN": f"{MARK}-jira-4c8b0e72",
    "PATCHGATE_AUDIT_KEY": f"{MARK}-audit-" + "k3y" * 8,
}
DB_PASSWORD = f"{MARK}-dbpw-31a9c0"
HOST_SECRETS = {  # inventory variables the SSH executor reads as secrets
    "sudo_password": f"{MARK}-sudo-e5d2",
    "ssh_key_passphrase": f"{MARK}-pass-0f6b",
    "ansible_become_password": f"{MARK}-become-8a1c",
}
APP_TOKEN = f"xapp-{MARK}-app-77e1"


def leaks(text: str) -> list[str]:
    """The lines of ``text`` that carry the marker every secret value has."""
    return [line[:300] for line in text.splitlines() if MARK in line]


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database, its URL carrying a password (the shared server trusts
    local connections, so any password is accepted: the value only has to travel)."""
    with fresh_database_url("postgresql", tmp_path) as url:
        yield str(
            sa.engine.make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
        )


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    async with slack_emulator(
        token=SECRETS["PATCHGATE_SLACK_BOT_TOKEN"],
        app_token=APP_TOKEN,
        channels={"C0123456789", "C0PATCHES", "C0ONCALL"},
    ) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment="Server", token=SECRETS["PATCHGATE_JIRA_TOKEN"])
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def inventory_with_secrets(tmp_path: Path) -> Path:
    data = yaml.safe_load((EXAMPLE_INVENTORY / "hosts.yml").read_text())
    data["all"].setdefault("vars", {}).update(HOST_SECRETS)
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text(yaml.safe_dump(data))
    return directory


def production_host() -> str:
    layout = layout_rollout(weekly_plan(), FileInventory([EXAMPLE_INVENTORY]).hosts())
    return sorted(next(r for r in layout.rings if r.name == "production").hosts)[0]


def dump_tables(url: str) -> str:
    """Every row of every table, as text."""
    engine = sa.create_engine(
        sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    )
    out = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                out.append(f"{table.name}: {json.dumps(list(row), default=str)}")
    engine.dispose()
    return "\n".join(out)


def _post(port: int, body: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _settled(url: str, within: float = 60) -> None:
    db = create_database(url)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            async with read_only(db) as session:
                pending = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.state == "pending")
                )
            if pending == 0:
                return
            await asyncio.sleep(0.3)
        async with read_only(db) as session:
            rows = (
                await session.execute(
                    sa.select(OutboxItem.key, OutboxItem.attempts, OutboxItem.last_error).where(
                        OutboxItem.state == "pending"
                    )
                )
            ).all()
        raise AssertionError(f"the outbox did not settle: {rows}")
    finally:
        await db.dispose()


async def test_no_secret_appears_in_logs_messages_tickets_tables_or_cli_output(
    pg_url: str, tmp_path: Path, slack: SlackEmulator, jira: JiraEmulator
) -> None:
    env = base_env(
        pg_url,
        **SECRETS,
        PATCHGATE_SLACK_API_URL=slack.url,
        PATCHGATE_JIRA_URL=jira.url,
        PATCHGATE_JIRA_PROJECT="OPS",
        PATCHGATE_INVENTORY=str(inventory_with_secrets(tmp_path)),
        PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"),
        PATCHGATE_LOG_LEVEL="DEBUG",
    )
    result = await asyncio.to_thread(patchgate, env, "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outputs = [result.stdout + result.stderr]

    # one failure in the last ring: a Jira ticket, the ring over its budget of 0, an
    # automatic rollback with tickets and an on-call alert -- every outbound path
    failing = production_host()
    fleet = RecordingExecutor.demo(state_file=tmp_path / "fleet.json")
    fleet.fail(failing, "apply")

    db = create_database(pg_url)
    try:
        with ServeProcess(env, cwd=tmp_path) as serve:
            await asyncio.to_thread(serve.wait_ready)
            await asyncio.to_thread(serve.wait_leader, timeout=30)
            body = urllib.parse.urlencode(
                {"team_id": "T0TEAM", "user_id": OPERATOR, "command": "/patch",
                 "text": "status", "channel_id": "C0123456789"}
            )  # fmt: skip
            signed = signed_request(body, secret=SECRETS["PATCHGATE_SLACK_SIGNING_SECRET"])
            status, text = await asyncio.to_thread(_post, serve.port, body, signed)
            assert status == 200, serve.log()
            outputs.append(text)

            rollout_id = await start_weekly(db)
            final = await drive_to_the_end(db, rollout_id, serve)
            assert final == "rolled_back", serve.log()[-3000:]
            try:
                await _settled(pg_url)
            finally:
                log = serve.log()
    finally:
        await db.dispose()

    # the rollout really used Slack and Jira
    assert slack.posted(), slack.calls
    assert any(failing in json.dumps(i.fields) for i in jira.issues.values()), jira.issues
    assert "DEBUG" in log
    # the DEBUG lines that would carry the bot token were there, redacted by slack_sdk
    assert "'Authorization': '(redacted)'" in log

    for argv in (
        ("rollout", "show", str(rollout_id)), ("rollout", "list"), ("outbox", "list"),
        ("audit", "verify"), ("inventory", "show"), ("inventory", "show", "--json"),
        ("plan", "list"), ("exception", "list"),
    ):  # fmt: skip
        result = await asyncio.to_thread(patchgate, env, *argv, cwd=tmp_path)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        outputs.append(f"$ patchgate {' '.join(argv)}\n{result.stdout}{result.stderr}")

    # the compliance evidence bundle: every file in the zip
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    result = await asyncio.to_thread(
        patchgate, env, "report", "build", "--since", since, "--out", str(tmp_path / "rep"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr)
    outputs.append(result.stdout + result.stderr)
    bundles = list((tmp_path / "rep").glob("*.zip"))
    assert len(bundles) == 1, bundles
    with zipfile.ZipFile(bundles[0]) as bundle:
        report = "\n".join(
            f"{name}: {bundle.read(name).decode('utf-8', 'replace')}" for name in bundle.namelist()
        )
    assert "rollout" in report.lower()

    places = {
        "serve log (DEBUG)": log,
        "Slack messages": json.dumps([c.params for c in slack.calls], default=str)
        + json.dumps(slack.messages, default=str),
        "Jira tickets": json.dumps(
            [{"fields": i.fields, "comments": i.comments} for i in jira.issues.values()],
            default=str,
        ),
        "database rows": await asyncio.to_thread(dump_tables, pg_url),
        "CLI output": "\n".join(outputs),
        "evidence bundle": report,
    }
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert not found, found
    assert len(places["database rows"]) > 1000  # the search looked at something real


def test_a_database_url_password_never_appears_in_a_connection_error(tmp_path: Path) -> None:
    url = f"postgresql://patchgate:{DB_PASSWORD}@127.0.0.1:9/patchgate"  # nothing listens
    env = base_env(url, PATCHGATE_LOG_LEVEL="DEBUG")
    for argv in (("db", "upgrade"), ("db", "current"), ("rollout", "list"), ("serve",)):
        result = patchgate(env, *argv, cwd=tmp_path, timeout=60)
        assert result.returncode != 0, argv
        text = result.stdout + result.stderr
        assert text.strip(), argv  # it says something...
        assert not leaks(text), (argv, leaks(text))  # ...without the password


def test_a_settings_error_never_echoes_a_secret_value(tmp_path: Path) -> None:
    env = base_env("sqlite:///x.db", PATCHGATE_AUDIT_KEY=f"{MARK}-short",
                   PATCHGATE_SLACK_BOT_TOKEN=f"xoxb-{MARK}")  # fmt: skip
    result = patchgate(env, "audit", "verify", cwd=tmp_path)
    assert result.returncode != 0
    assert "audit_key" in (result.stdout + result.stderr).lower()
    assert not leaks(result.stdout + result.stderr)


async def test_the_app_token_never_shows_when_socket_mode_cannot_connect(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    """Socket Mode with an app token the emulator's Slack has no socket for: the failure is
    reported (and retried) without the token, at DEBUG."""
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    env = base_env(
        url,
        PATCHGATE_SLACK_BOT_TOKEN=SECRETS["PATCHGATE_SLACK_BOT_TOKEN"],
        PATCHGATE_SLACK_SIGNING_SECRET=SECRETS["PATCHGATE_SLACK_SIGNING_SECRET"],
        PATCHGATE_SLACK_APP_TOKEN=APP_TOKEN,
        PATCHGATE_SLACK_API_URL=slack.url,
        PATCHGATE_LOG_LEVEL="DEBUG",
    )
    result = await asyncio.to_thread(patchgate, env, "db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with ServeProcess(env, cwd=tmp_path) as serve:
        deadline = time.monotonic() + 30
        while not slack.called("apps.connections.open") and not any(
            c.method == "apps.connections.open" for c in slack.calls
        ):
            assert time.monotonic() < deadline, serve.log()[-3000:]
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # let it report the failure
        log = serve.log()
    assert "apps.connections.open" in log
    assert not leaks(log), leaks(log)
