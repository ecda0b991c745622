"""``patchgate console``: ``serve`` in Slack's HTTP mode, talking to the local stand-in.

The console builds a Settings object of its own (SQLite in a data directory, the example
plans and inventory, the recording executor, the console's people as operators and on
call, a generated bot token and signing secret, PATCHGATE_SLACK_API_URL at the
stand-in), migrates the database, starts the page and the stand-in on one port and runs
``patchgate serve`` unchanged, on a loopback port only the stand-in calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.console.page import build_page_app
from bot.console.people import ONCALL, ONCALL_GROUP, OPERATOR
from bot.console.relay import Relay
from bot.console.workspace import Workspace
from bot.settings import Settings, load_settings

log = logging.getLogger("patchgate.console")

READY_TIMEOUT = 60.0


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path | None = None
    tour: bool = False
    pace: float = 3.0  # seconds between the tour's steps
    apply_delay: float = 0.5  # seconds a simulated host takes to patch
    lab: Path | None = None  # a directory `python -m tests.console.lab` keeps up to date


def refusal(settings: Settings) -> str | None:
    """One line saying why the console must not start here, or None."""
    real = [
        name
        for name, value in (
            ("PATCHGATE_SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("PATCHGATE_SLACK_APP_TOKEN", settings.slack_app_token),
        )
        if value is not None
    ]
    if real:
        return (
            f"the console does not start when real Slack tokens are configured "
            f"({' and '.join(real)} set): unset them to try the console"
        )
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def examples_dir() -> Path:
    """The example plans and inventory: in the wheel (bot/console/examples) or the clone."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parent.parent / "examples"):
        if (candidate / "plans").is_dir() and (candidate / "inventory").is_dir():
            return candidate
    raise FileNotFoundError(f"no example plans found ({here / 'examples'})")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


LAB_FILES = ("inventory.yml", "known_hosts", "plans", "ready")


def lab_problem(lab: Path) -> str | None:
    """Why ``--lab DIR`` cannot be used, or None."""
    missing = [name for name in LAB_FILES if not (lab / name).exists()]
    if missing:
        return (
            f"--lab {lab}: no lab there ({', '.join(missing)} missing): start it first, as "
            f"root, from a clone: python -m tests.console.lab {lab}"
        )
    return None


def hosts_settings(data: Path, *, lab: Path | None, apply_delay: float) -> dict[str, object]:
    """Simulated hosts from the examples, or the lab's real ones over SSH."""
    if lab is not None:
        return {
            "plans_dir": lab / "plans",
            "inventory": str(lab / "inventory.yml"),
            "executor": "ssh",
            "ssh_known_hosts": lab / "known_hosts",
            "ssh_config": "none",
            "ssh_command_timeout": 300,
        }
    examples = examples_dir()
    return {
        "plans_dir": examples / "plans",
        "inventory": str(examples / "inventory"),
        "executor": "recording",
        "recording_state_file": data / "hosts.json",
        "recording_apply_delay": apply_delay,
    }


def console_settings(
    data: Path, *, serve_port: int, api_url: str, apply_delay: float, lab: Path | None = None
) -> Settings:
    """The Settings ``serve`` runs with under the console (the environment's other
    PATCHGATE_* values still apply: log level, time zone, ...)."""
    return load_settings(
        database_url=f"sqlite:///{data / 'console.db'}",
        **hosts_settings(data, lab=lab, apply_delay=apply_delay),
        slack_bot_token=f"xoxb-console-{secrets.token_hex(12)}",
        slack_signing_secret=secrets.token_hex(16),
        slack_app_token=None,
        slack_api_url=api_url,
        host="127.0.0.1",
        port=serve_port,
        metrics_port=None,
        operators=OPERATOR,
        oncall_channel=ONCALL,
        oncall_group=ONCALL_GROUP,
        jira_url=None,
        report_dir=data / "reports",
        audit_archive_dir=data / "audit-archive",
        server_url=f"http://127.0.0.1:{serve_port}",
        shutdown_grace=5,
    )


async def wait_ready(url: str, *, within: float = READY_TIMEOUT) -> bool:
    """True once ``serve`` answers /healthz as leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while loop.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200 and (await resp.json()).get("leader"):
                        return True
            await asyncio.sleep(0.2)
    return False


async def run_console(options: Options, env: Settings) -> int:
    """Start the page, the stand-in and ``serve``; run until SIGINT/SIGTERM."""
    if (why := refusal(env)) is not None:
        print(f"patchgate: {why}", file=sys.stderr)
        return 2
    from bot import migrate  # (imports Alembic, which logs as it loads)
    from bot.cli.serve import serve

    if options.lab is not None:
        if options.tour:
            print(
                "patchgate: --tour plays on simulated hosts only: not with --lab", file=sys.stderr
            )
            return 2
        if (why := lab_problem(options.lab)) is not None:
            print(f"patchgate: {why}", file=sys.stderr)
            return 2
    if not is_loopback(options.host):
        print(
            f"patchgate: warning: the console listens on {options.host}: anyone who can reach "
            "it can act as any of its people. It is for trying and demos only.",
            file=sys.stderr,
        )
    temporary = options.data_dir is None
    data = Path(tempfile.mkdtemp(prefix="patchgate-console-")) if temporary else options.data_dir
    assert data is not None
    data.mkdir(parents=True, exist_ok=True)
    shown_host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    port = options.port or free_port(options.host)
    page_url = local = f"http://{shown_host}:{port}"
    settings = console_settings(
        data,
        serve_port=free_port(),
        api_url=f"{local}/api/",
        apply_delay=options.apply_delay,
        lab=options.lab,
    )
    assert settings.slack_bot_token is not None and settings.slack_signing_secret is not None
    workspace = Workspace(token=settings.slack_bot_token.get_secret_value(), url=f"{local}/api/")
    relay = Relay(
        workspace,
        events_url=f"http://127.0.0.1:{settings.port}/slack/events",
        secret=settings.slack_signing_secret.get_secret_value(),
        page_url=local,
    )
    runner = web.AppRunner(build_page_app(workspace, relay), access_log=None)
    try:
        await runner.setup()
        try:
            await web.TCPSite(runner, options.host, port).start()
        except OSError as exc:
            print(
                f"patchgate: cannot listen on {options.host}:{port} "
                f"({exc.strerror or exc}); choose another with --port",
                file=sys.stderr,
            )
            return 1
        await asyncio.to_thread(migrate.upgrade, settings.database)
        extra = asyncio.create_task(_announce(options, page_url, settings, workspace, relay))
        try:
            return await serve(argparse.Namespace(), settings)  # serve takes no arguments
        finally:
            extra.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await extra
    finally:
        await relay.close()
        await runner.cleanup()
        if temporary:
            shutil.rmtree(data, ignore_errors=True)


async def _announce(
    options: Options, page_url: str, settings: Settings, workspace: Workspace, relay: Relay
) -> None:
    if not await wait_ready(f"http://127.0.0.1:{settings.port}"):
        print("patchgate: serve did not become ready; see the log above", file=sys.stderr)
        return
    print(
        f"\nPatchGate console: open {page_url}/\n"
        "  (not Slack: PatchGate's real Slack app talking to a local stand-in; Ctrl-C stops)\n",
        flush=True,
    )
    if options.tour:
        from bot.console.tour import play
        from integrations.inventory import FileInventory

        assert settings.recording_state_file is not None
        hosts = FileInventory(settings.inventory_sources).hosts()
        production = [h.name for h in hosts if "prod" in h.groups]
        await play(workspace, relay, settings.recording_state_file, production, pace=options.pace)
