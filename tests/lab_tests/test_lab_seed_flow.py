"""The seed's flow as an acceptance test (issue 19, item 5): the shipped plan
examples/ansible/plan.yml (the guide's Kestra example: a weekly window, patch.yml on the
dev ring, HTTP health checks, an approval, patch.yml on prod, compliance evidence, and on
error a rollback and a Slack alert) run by a real ``patchgate serve`` process: Slack over
HTTP against the Slack emulator, the weekly window opened by the test clock, each batch
one real ``ansible-playbook`` run (ansible-runner) over real sshd on the lab's apt hosts,
the approval a signed Slack click by the approver.

1. demo-app 1.1 published: dev is patched, its health checks pass, the approver clicks,
   prod is patched; both hosts end at 1.1 by dpkg, the rollout succeeded, the host runs
   say ``ansible``, the evidence bundle verifies and so does the audit chain.
2. demo-app 1.2 published (installs fine, health answers 503): dev's health check fails,
   rollback.yml puts 1.0 back (dpkg), on-call is alerted in Slack, prod is never touched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from tests.dbutil import fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, migrate, patchgate
from tests.e2e.test_serve_jira_change import approve_button, click
from tests.e2e.test_serve_windows import rows, set_clock
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.lab.ansible_fixtures import ansible_lab
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.slack.conftest import SECRET, TOKEN
from workflows.models import DueTime, HostRun, Rollout
from workflows.states import ROLLOUT_SETTLED_VALUES

__all__ = ["ansible_lab"]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "examples" / "ansible" / "plan.yml"
APPROVER = "U0123ABCDE"  # the plan's approver
CHANNEL = "C0PATCHES"  # the plan's channel
ONCALL = "C0ONCALL"
SUNDAY_0200 = dt.datetime(2026, 12, 6, 2, 0, tzinfo=dt.UTC)  # the plan's weekly window
DEV, PROD = "lab-seed-dev", "lab-seed-prod"


def slack_env(slack: SlackEmulator) -> dict[str, str]:
    return {
        "PATCHGATE_SLACK_BOT_TOKEN": TOKEN,
        "PATCHGATE_SLACK_SIGNING_SECRET": SECRET,
        "PATCHGATE_SLACK_API_URL": slack.url,
    }


@pytest.fixture(scope="module")
def hosts(ansible_lab: Lab) -> Iterator[dict[str, LabHost]]:
    started: list[LabHost] = []
    try:
        for i, name in enumerate((DEV, PROD)):
            host = ansible_lab.host(name, 97 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield {h.name: h for h in started}
    finally:
        for host in started:
            host.stop()


def fresh(lab: Lab, hosts: dict[str, LabHost], *publish: str) -> None:
    """Publish only ``publish``; each host a fresh disk with demo-app 1.0, its home owned
    by the login user (Ansible keeps its temp files there)."""
    lab.publish_only(*publish)
    for host in hosts.values():
        host.reset()
        host.sh("chown patchgate: /home/patchgate")
        assert host.installed("demo-app") == "1.0"


def write_setup(lab: Lab, hosts: dict[str, LabHost], tmp: Path) -> dict[str, str]:
    """The shipped plan (project_dir made absolute) and the Ansible-style inventory."""
    text = PLAN.read_text()
    assert "project_dir: examples/ansible\n" in text
    text = text.replace("project_dir: examples/ansible\n", f"project_dir: {PLAN.parent}\n")
    inventory = (
        "all:\n"
        f"  vars: {{ansible_user: patchgate, ansible_become: true, "
        f"ansible_ssh_private_key_file: '{lab.client_key}'}}\n"
        "  children:\n"
        + "".join(
            f"    {group}: {{hosts: {{{h.name}: "
            f"{{ansible_host: '{h.address}', ansible_port: {h.port}}}}}}}\n"
            for group, h in (("dev", hosts[DEV]), ("prod", hosts[PROD]))
        )
    )
    return serve_setup(hosts.values(), tmp, {"seed-flow.yml": text}, inventory)


def serve_setup(
    hosts: Iterable[LabHost], tmp: Path, plans: dict[str, str], inventory: str
) -> dict[str, str]:
    """The plans directory, the inventory, known_hosts and the test clock (just before
    the plans' Sunday window): serve's environment beyond base_env for lab hosts."""
    plans_dir = tmp / "plans"
    plans_dir.mkdir()
    for name, text in plans.items():
        (plans_dir / name).write_text(text)
    (tmp / "inventory.yml").write_text(inventory)
    known = tmp / "known_hosts"
    known.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    clock = tmp / "clock"
    set_clock(clock, SUNDAY_0200 - dt.timedelta(minutes=5))
    return {
        "PATCHGATE_PLANS_DIR": str(plans_dir),
        "PATCHGATE_INVENTORY": str(tmp / "inventory.yml"),
        "PATCHGATE_EXECUTOR": "ssh",
        "PATCHGATE_SSH_KNOWN_HOSTS": str(known),
        "PATCHGATE_SSH_COMMAND_TIMEOUT": "120",
        "PATCHGATE_ANSIBLE_ARTIFACTS_DIR": str(tmp / "ansible-artifacts"),
        "PATCHGATE_ANSIBLE_TIMEOUT": "300",
        "PATCHGATE_TEST_CLOCK_FILE": str(clock),
        "PATCHGATE_ONCALL_CHANNEL": ONCALL,
        "PATCHGATE_REPORT_DIR": str(tmp / "reports"),
    }


async def eventually(
    what: str,
    probe: Callable[[], T | None],
    serve: ServeProcess,
    *,
    within: float = 300,
    db: bool = False,
) -> T:
    """Poll ``probe`` until it answers: on the event loop, where the Slack emulator lives,
    or (``db``: it reads the database with a loop of its own) in a thread."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(probe) if db else probe()
        if value is not None and value is not False:
            return value
        if serve.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}\n{serve.log()}")
        await asyncio.sleep(0.3)


def rollout(url: str) -> Rollout | None:
    found = rows(url, sa.select(Rollout))
    return found[0] if found else None


def finished(url: str) -> Rollout | None:
    r = rollout(url)
    return r if r is not None and r.state in ROLLOUT_SETTLED_VALUES else None


def host_runs(url: str) -> dict[str, HostRun]:
    return {r.host_name: r for r in rows(url, sa.select(HostRun))}


def playbook_runs(artifacts: Path) -> list[tuple[str, str]]:
    """Each ansible-playbook run kept for evidence: (its --limit, its playbook), by job."""
    runs = []
    for command in sorted(artifacts.glob("*/artifacts/*/command")):
        argv = json.loads(command.read_text())["command"]
        runs.append((argv[argv.index("--limit") + 1], argv[-1]))
    return runs


def thread(slack: SlackEmulator, root: dict[str, Any], *, until: str) -> str | None:
    """The thread under ``root``, once it says ``until``."""
    said = "\n".join(
        m.get("text") or "" for m in slack.posted(CHANNEL) if m.get("thread_ts") == root["ts"]
    )
    return said if until in said else None


def texts(slack: SlackEmulator, channel: str) -> list[str]:
    return [m.get("text") or "" for m in slack.posted(channel)]


def gate_message(slack: SlackEmulator) -> dict[str, Any] | None:
    for message in slack.posted(CHANNEL):
        if "gate_actions" in json.dumps(message.get("blocks") or []) and approve_button(message):
            return message
    return None


async def open_window(url: str, clock: Path, serve: ServeProcess) -> None:
    """Once serve leads and wrote the plan's next window, move the clock into it."""
    await asyncio.to_thread(serve.wait_leader, timeout=60)

    def window() -> list[Any]:
        due = rows(url, sa.select(DueTime).where(DueTime.kind == "window"))
        return [d for d in due if d.due_at.astimezone(dt.UTC) == SUNDAY_0200]

    await eventually("the plan's weekly window", window, serve, within=30, db=True)
    assert await asyncio.to_thread(rollout, url) is None  # nothing before the window
    set_clock(clock, SUNDAY_0200 + dt.timedelta(minutes=1))


async def verified_evidence(env: dict[str, str], tmp: Path) -> str:
    """The evidence bundle of December 2026 built by ``patchgate report build``, checked by
    ``report verify`` and ``audit verify``; its files' text, for the words to look for."""
    reports = tmp / "reports"
    built = await asyncio.to_thread(
        patchgate, env, "report", "build", "--since", "2026-12-01", "--until",
        "2026-12-31", "--out", str(reports), "--json", cwd=tmp,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [bundle] = reports.glob("*.zip")
    assert json.loads(built.stdout)["path"] == str(bundle)
    with zipfile.ZipFile(bundle) as z:
        contents = "\n".join(z.read(n).decode(errors="replace") for n in z.namelist())
    verified = await asyncio.to_thread(
        patchgate, env, "report", "verify", str(bundle), "--json", cwd=tmp
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    checked = json.loads(verified.stdout)
    assert checked["ok"] is True and checked["events"] > 0, checked
    audit = await asyncio.to_thread(patchgate, env, "audit", "verify", cwd=tmp)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    return contents


async def test_the_seed_flow_patches_dev_then_prod_by_playbook_after_a_slack_approval_with_evidence(
    ansible_lab: Lab, hosts: dict[str, LabHost], tmp_path: Path
) -> None:
    fresh(ansible_lab, hosts, "demo-app=1.0", "demo-app=1.1")
    extra = write_setup(ansible_lab, hosts, tmp_path)
    with fresh_database_url("sqlite", tmp_path) as url:
        await asyncio.to_thread(migrate, url, tmp_path)
        async with slack_emulator(token=TOKEN) as slack:
            env = base_env(url, **extra, **slack_env(slack))
            with ServeProcess(env, cwd=tmp_path) as serve:
                await open_window(url, Path(extra["PATCHGATE_TEST_CLOCK_FILE"]), serve)

                gate = await eventually("the prod gate message", lambda: gate_message(slack), serve)
                # dev is done (by playbook) before the gate opens; prod is untouched
                assert hosts[DEV].installed("demo-app") == "1.1"
                assert hosts[PROD].installed("demo-app") == "1.0"
                value = approve_button(gate)
                assert value is not None
                status, _ = await asyncio.to_thread(click, serve.port, value, APPROVER)
                assert status == 200, serve.log()[-3000:]

                done = await eventually("the rollout's end", lambda: finished(url), serve, db=True)
                assert done.state == "succeeded", serve.log()[-5000:]
                assert done.source == "schedule"

                # the thread tells the progress; the root message ends as the outcome
                [root] = [m for m in slack.posted(CHANNEL) if not m.get("thread_ts")]
                progress = await eventually(
                    "prod's progress in the thread",
                    lambda: thread(slack, root, until="Ring prod done"),
                    serve,
                    within=60,
                )
                for line in (
                    "debian-12-amd64: demo-app=1.1",
                    "Ring dev done: 1 healthy",
                    "Gate for ring prod approved (1/1)",
                    "Ring prod done: 1 healthy",
                ):
                    assert line in progress, progress
                await eventually(
                    "the root message updated to the outcome",
                    lambda: (
                        ":white_check_mark: *succeeded*"
                        in (slack.message(CHANNEL, root["ts"]) or {}).get("text", "")
                    ),
                    serve,
                    within=60,
                )
                assert texts(slack, ONCALL) == []
                assert serve.terminate(timeout=45) == 0

        assert {n: h.installed("demo-app") for n, h in hosts.items()} == {DEV: "1.1", PROD: "1.1"}
        assert {n: h.dpkg_installs("demo-app", "1.1") for n, h in hosts.items()} == {
            DEV: 1,
            PROD: 1,
        }
        runs = await asyncio.to_thread(host_runs, url)
        assert {n: (r.backend, r.state) for n, r in runs.items()} == {
            DEV: ("ansible", "healthy"),
            PROD: ("ansible", "healthy"),
        }
        assert playbook_runs(tmp_path / "ansible-artifacts") == [
            (DEV, "patch.yml"),
            (PROD, "patch.yml"),
        ]

        # compliance evidence: the bundle for the period, then its verification
        contents = await verified_evidence(env, tmp_path)
        for word in (DEV, PROD, "ansible:apply"):  # host.command: <backend>:<action>
            assert word in contents, word


async def test_a_503_after_dev_is_patched_rolls_it_back_by_playbook_alerts_oncall_and_spares_prod(
    ansible_lab: Lab, hosts: dict[str, LabHost], tmp_path: Path
) -> None:
    fresh(ansible_lab, hosts, "demo-app=1.0", "demo-app=1.2")
    extra = write_setup(ansible_lab, hosts, tmp_path)
    with fresh_database_url("sqlite", tmp_path) as url:
        await asyncio.to_thread(migrate, url, tmp_path)
        async with slack_emulator(token=TOKEN) as slack:
            env = base_env(url, **extra, **slack_env(slack))
            with ServeProcess(env, cwd=tmp_path) as serve:
                await open_window(url, Path(extra["PATCHGATE_TEST_CLOCK_FILE"]), serve)

                done = await eventually("the rollout's end", lambda: finished(url), serve, db=True)
                assert done.state == "rolled_back", (done.state, serve.log()[-5000:])
                alert = await eventually(
                    "the on-call rollback alert",
                    lambda: texts(slack, ONCALL) or None,
                    serve,
                    within=60,
                )
                assert gate_message(slack) is None  # the prod gate never opened
                assert serve.terminate(timeout=45) == 0

        assert alert == [
            ":rotating_light: Rollout #1 of plan seed-flow: failure budget exceeded in ring dev: "
            "1 failed, budget 0; rolling back ring dev. Failed: lab-seed-dev"
        ]
        assert hosts[DEV].installed("demo-app") == "1.0"
        assert hosts[DEV].dpkg_installs("demo-app", "1.2") == 1  # patched once...
        assert hosts[DEV].dpkg_installs("demo-app", "1.0") == 1  # ...and put back once
        assert hosts[PROD].installed("demo-app") == "1.0"
        assert hosts[PROD].dpkg_installs("demo-app", "1.2") == 0
        runs = await asyncio.to_thread(host_runs, url)
        assert runs[DEV].backend == "ansible"
        assert playbook_runs(tmp_path / "ansible-artifacts") == [
            (DEV, "patch.yml"),
            (DEV, "rollback.yml"),
        ]
        assert runs[DEV].state == "rolled_back", {n: r.state for n, r in runs.items()}
        assert runs[DEV].error is not None and runs[DEV].error.startswith(
            "health check failed: demo-app answers: GET "
            f"http://{hosts[DEV].address}:8080/cgi-bin/health: 503, expected 200"
        ), runs[DEV].error
        assert (runs[PROD].state, runs[PROD].error) == (
            "skipped",
            "rollout stopped: failure budget exceeded in ring dev: 1 failed, budget 0",
        )
