"""One plan, one rollout over three backends (issue 21, "Done means"): Debian hosts
patched over SSH by PatchGate's own executor, hosts of an Ansible group patched by the
example playbook (real ``ansible-playbook`` through ansible-runner) and Windows devices
patched through Intune / the Windows Update for Business deployment service (the Graph
emulator), all run by a real ``patchgate serve`` process with Slack over HTTP against
the Slack emulator.

The plan's first ring mixes all three kinds (each host's backend picked by its inventory
variable ``patchgate_backend``); a Slack approval gate, passed by a signed click of the
approver, stands before one ring per kind (each ring's ``backend:``). One patch set is
pinned for the rollout: the Debian package and the Windows KBs (one per Windows build).
Asserted where each change lives: dpkg on the lab hosts, the emulator's device build and
Windows Update state for the Windows devices; the jobs, the audit trail and the evidence
bundle name each backend with its job ids (the ansible-runner job directories, the
Intune deployment ids); no SSH connection is attempted to a Windows device.

In the default run, since it is what "one plan over every kind of host" rests on
(2 to 3.5 minutes of a rollout on this shared machine).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from aiohttp import web

from tests.dbutil import fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, migrate
from tests.e2e.test_serve_jira_change import approve_button, click
from tests.e2e.test_serve_windows import rows
from tests.fakes.intune_graph_api import IntuneGraphEmulator
from tests.fakes.slack_api import slack_emulator
from tests.lab.ansible_fixtures import ansible_lab
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost, ssh_port
from tests.lab.net import lab_octet
from tests.lab_tests.test_lab_seed_flow import (
    APPROVER,
    CHANNEL,
    ONCALL,
    eventually,
    finished,
    fresh,
    gate_message,
    host_runs,
    open_window,
    playbook_runs,
    serve_setup,
    slack_env,
    texts,
    thread,
    verified_evidence,
)
from tests.slack.conftest import TOKEN
from workflows.models import BackendJob, Event

__all__ = ["ansible_lab"]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "ansible"
# Lab hosts: two patched over SSH, two through Ansible (one of each in the canary ring)
SSH_CANARY, SSH_FLEET = "lab-mix-ssh-1", "lab-mix-ssh-2"
ANS_CANARY, ANS_GROUP = "lab-mix-ans-1", "lab-mix-ans-2"
LAB = {SSH_CANARY: 80, SSH_FLEET: 81, ANS_CANARY: 82, ANS_GROUP: 83}
# Windows devices (Intune): name -> (build before, its slot in 127.S.32.K)
WIN_CANARY, WIN_A, WIN_B = "win-mix-1", "win-mix-2", "win-mix-3"
WINDOWS = {
    WIN_CANARY: ("10.0.22631.4460", 1),
    WIN_A: ("10.0.22631.4460", 2),
    WIN_B: ("10.0.19045.5073", 3),
}
UPDATE = {"10.0.22631.4541": "KB5046633", "10.0.19045.5131": "KB5046613"}  # build -> KB

PLAN = """\
name: mixed-fleet
description: One patch set through SSH hosts, an Ansible group and Windows devices.
schedule: {{cron: "0 2 * * 0", timezone: UTC, duration: 4h}}
packages:
  include: ["demo-app", "KB*"]
reboot: never                # Windows restarts on its own (intune reboots_itself)
rollback: none               # the deployment service cannot uninstall an update
health_checks:
  - name: app answers
    type: http
    url: "http://{{address}}:8080/cgi-bin/health"
    timeout: 3s
    retries: 2
    interval: 1s
backend: ssh
backends:
  ansible:
    project_dir: {project}
    playbook: patch.yml
  intune:
    update_ring_id: {ring_id}
    days_until_forced_reboot: 1
rings:
  - name: canary             # one host of each kind, by its patchgate_backend
    hosts: group:canary
    batch: 100%
  - name: linux-ssh
    hosts: group:linux
    batch: 100%
    gate:
      type: approval
      approvers: {{users: [{approver}]}}
      timeout: 4h
  - name: web-ansible
    hosts: group:web
    backend: ansible
    batch: 100%
  - name: windows
    hosts: group:windows
    backend: intune
    batch: 100%
    health_checks:           # the ring's own: the app, and Intune's view of each device
      - {{name: app answers, type: http, url: "http://{{address}}:8080/cgi-bin/health",
         timeout: 3s, retries: 2, interval: 1s}}
      - {{name: device, type: tool, retries: 2, interval: 1s}}
slack:
  channel: {channel}
"""


def win_address(slot: int) -> str:
    """A Windows device's address: the lab slot's 127.S.32.K (hosts are .30, the
    repository .31)."""
    return f"127.{lab_octet()}.32.{slot}"


@pytest.fixture(scope="module")
def hosts(ansible_lab: Lab) -> Iterator[dict[str, LabHost]]:
    started: list[LabHost] = []
    try:
        for name, index in LAB.items():
            host = ansible_lab.host(name, index)
            host.prepare()
            started.append(host)
            host.start()
        yield {h.name: h for h in started}
    finally:
        for host in started:
            host.stop()


@pytest_asyncio.fixture
async def graph() -> AsyncIterator[IntuneGraphEmulator]:
    emulator = IntuneGraphEmulator(steps=1)
    await emulator.start()
    synced = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Intune's check-in
    for name, (build, _) in WINDOWS.items():
        emulator.add_device(name, build, last_sync=synced)
    emulator.add_device("win-elsewhere", "10.0.22631.4460")  # in Intune, not in the plan
    emulator.add_entry("2026.11 B", UPDATE, severity="critical", cves=["CVE-2026-43451"])
    try:
        yield emulator
    finally:
        await emulator.stop()


@dataclass
class WindowsSide:
    """What reached the Windows devices' addresses: the application's health endpoint
    on :8080 (what the plan's HTTP check reaches: device, its build when asked), and the
    SSH port, where nothing of PatchGate's may knock (the devices are Intune's)."""

    asked: list[tuple[str, str]] = field(default_factory=list)
    ssh_knocks: list[str] = field(default_factory=list)


@pytest_asyncio.fixture
async def windows(graph: IntuneGraphEmulator) -> AsyncIterator[WindowsSide]:
    side = WindowsSide()
    runners: list[web.AppRunner] = []
    servers: list[asyncio.Server] = []

    def app(name: str) -> web.Application:
        async def health(_: web.Request) -> web.Response:
            build = graph.by_name(name).build
            side.asked.append((name, build))
            return web.Response(text=f"{name} {build}\n")

        application = web.Application()
        application.router.add_get("/cgi-bin/health", health)
        return application

    def knocked(name: str) -> Any:
        async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            side.ssh_knocks.append(name)
            writer.close()

        return on_connect

    try:
        for name, (_, slot) in WINDOWS.items():
            runner = web.AppRunner(app(name), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, win_address(slot), 8080).start()
            servers.append(await asyncio.start_server(knocked(name), win_address(slot), ssh_port()))
        yield side
    finally:
        for server in servers:
            server.close()
        for runner in runners:
            await runner.cleanup()


def inventory_yaml(lab: Lab, hosts: dict[str, LabHost]) -> str:
    """Ansible-style: the canary group mixes the three kinds; ansible's canary host and
    every Windows device name their backend (as an Intune import would)."""

    def lab_host(name: str, **extra: str) -> str:
        h = hosts[name]
        fields = {"ansible_host": h.address, "ansible_port": str(h.port), **extra}
        return f"{name}: {{{', '.join(f'{k}: {v!r}' for k, v in fields.items())}}}"

    def win(name: str) -> str:
        return (
            f"{name}: {{ansible_host: '{win_address(WINDOWS[name][1])}', "
            f"ansible_port: {ssh_port()}, patchgate_backend: intune, patchgate_os_family: windows}}"
        )

    return (
        "all:\n"
        f"  vars: {{ansible_user: patchgate, ansible_become: true, "
        f"ansible_ssh_private_key_file: '{lab.client_key}'}}\n"
        "  children:\n"
        "    canary:\n      hosts:\n"
        f"        {lab_host(SSH_CANARY)}\n"
        f"        {lab_host(ANS_CANARY, patchgate_backend='ansible')}\n"
        f"        {win(WIN_CANARY)}\n"
        f"    linux:\n      hosts:\n        {lab_host(SSH_FLEET)}\n"
        f"    web:\n      hosts:\n        {lab_host(ANS_GROUP)}\n"
        "    windows:\n      hosts:\n"
        f"        {win(WIN_A)}\n        {win(WIN_B)}\n"
    )


def write_setup(
    lab: Lab, hosts: dict[str, LabHost], graph: IntuneGraphEmulator, tmp: Path
) -> dict[str, str]:
    plan = PLAN.format(project=PROJECT, ring_id=graph.ring_id, approver=APPROVER, channel=CHANNEL)
    return {
        **serve_setup(hosts.values(), tmp, {"mixed-fleet.yml": plan}, inventory_yaml(lab, hosts)),
        "PATCHGATE_INTUNE_TENANT_ID": graph.tenant,
        "PATCHGATE_INTUNE_CLIENT_ID": graph.client_id,
        "PATCHGATE_INTUNE_CLIENT_SECRET": graph.client_secret,
        "PATCHGATE_INTUNE_GRAPH_URL": graph.url,
        "PATCHGATE_INTUNE_LOGIN_URL": graph.url,
        "PATCHGATE_INTUNE_JOURNAL_DIR": str(tmp / "intune-journal"),
        "PATCHGATE_INTUNE_POLL_INTERVAL": "0.2",
    }


def jobs(url: str) -> list[tuple[str, str, str, str]]:
    found = rows(url, sa.select(BackendJob).order_by(BackendJob.id))
    return [(j.backend, j.action, j.state, j.job_id or "") for j in found]


def events(url: str, kind: str) -> list[dict[str, Any]]:
    found = rows(url, sa.select(Event).where(Event.kind == kind).order_by(Event.id))
    return [json.loads(e.body)["data"] for e in found]


async def test_one_rollout_patches_ssh_hosts_an_ansible_group_and_windows_devices_past_a_slack_gate(
    ansible_lab: Lab,
    hosts: dict[str, LabHost],
    graph: IntuneGraphEmulator,
    windows: WindowsSide,
    tmp_path: Path,
) -> None:
    fresh(ansible_lab, hosts, "demo-app=1.0", "demo-app=1.1")
    extra = write_setup(ansible_lab, hosts, graph, tmp_path)
    with fresh_database_url("sqlite", tmp_path) as url:
        await asyncio.to_thread(migrate, url, tmp_path)
        async with slack_emulator(token=TOKEN) as slack:
            env = base_env(url, **extra, **slack_env(slack))
            with ServeProcess(env, cwd=tmp_path) as serve:
                await open_window(url, Path(extra["PATCHGATE_TEST_CLOCK_FILE"]), serve)

                gate = await eventually("the gate message", lambda: gate_message(slack), serve)
                # the canary ring is done, one host of each kind; nothing else touched
                installed = {n: h.installed("demo-app") for n, h in hosts.items()}
                assert installed == {
                    SSH_CANARY: "1.1", ANS_CANARY: "1.1", SSH_FLEET: "1.0", ANS_GROUP: "1.0"
                }  # fmt: skip
                builds = {n: graph.by_name(n).build for n in WINDOWS}
                assert builds == {
                    WIN_CANARY: "10.0.22631.4541",
                    WIN_A: "10.0.22631.4460",
                    WIN_B: "10.0.19045.5073",
                }
                assert len(graph.deployments) == 1
                value = approve_button(gate)
                assert value is not None
                status, _ = await asyncio.to_thread(click, serve.port, value, APPROVER)
                assert status == 200, serve.log()[-3000:]

                done = await eventually("the rollout's end", lambda: finished(url), serve, db=True)
                assert done.state == "succeeded", (done.reason, serve.log()[-5000:])
                [root] = [m for m in slack.posted(CHANNEL) if not m.get("thread_ts")]
                progress = await eventually(
                    "the windows ring's end in the thread",
                    lambda: thread(slack, root, until="Ring windows done"),
                    serve,
                    within=60,
                )
                assert texts(slack, ONCALL) == []
                assert serve.terminate(timeout=45) == 0

        # One patch set pinned for the rollout: the Debian package and the Windows KBs,
        # per Windows release (the devices' facts from Intune).
        assert done.patchset == {
            "debian-12-amd64": {"demo-app": "1.1"},
            "windows-10.0.22631-any": {"KB5046633": "10.0.22631.4541"},
            "windows-10.0.19045-any": {"KB5046613": "10.0.19045.5131"},
        }, done.patchset
        for line in (
            "Ring canary done: 3 healthy",
            "Gate for ring linux-ssh approved (1/1)",
            "Ring linux-ssh done: 1 healthy",
            "Ring web-ansible done: 1 healthy",
            "Ring windows done: 2 healthy",
        ):
            assert line in progress, progress

        # Each change where it lives: dpkg on the lab hosts (installed once), the device's
        # build and Windows Update state in Intune; the device outside the plan untouched.
        assert {n: h.installed("demo-app") for n, h in hosts.items()} == dict.fromkeys(LAB, "1.1")
        assert {n: h.dpkg_installs("demo-app", "1.1") for n, h in hosts.items()} == dict.fromkeys(
            LAB, 1
        )
        for name, (before, _) in WINDOWS.items():
            target = next(b for b in UPDATE if b.split(".")[2] == before.split(".")[2])
            device = graph.by_name(name)
            assert (device.build, device.ring_status) == (target, "upToDate"), name
        assert graph.by_name("win-elsewhere").build == "10.0.22631.4460"
        # PatchGate's HTTP check reached each Windows device's application after its update
        assert {n for n, b in windows.asked if b in UPDATE} == set(WINDOWS)
        assert windows.ssh_knocks == []  # no SSH step (facts, preflight...) went to them

        runs = await asyncio.to_thread(host_runs, url)
        assert {n: (r.backend, r.state) for n, r in runs.items()} == {
            SSH_CANARY: ("ssh", "healthy"),
            SSH_FLEET: ("ssh", "healthy"),
            ANS_CANARY: ("ansible", "healthy"),
            ANS_GROUP: ("ansible", "healthy"),
            WIN_CANARY: ("intune", "healthy"),
            WIN_A: ("intune", "healthy"),
            WIN_B: ("intune", "healthy"),
        }
        assert runs[WIN_B].after_versions == {"KB5046613": "10.0.19045.5131"}
        # the windows ring's tool check asked Intune for each device's own state
        for name in (WIN_A, WIN_B):
            checks = {c["name"]: c for c in runs[name].health or []}
            assert checks["device"]["ok"] is True, checks
            assert checks["device"]["detail"].startswith("intune: upToDate"), checks
        assert runs[ANS_GROUP].after_versions == {"demo-app": "1.1"}

        # The jobs: one playbook run per ansible batch, one deployment per intune batch
        assert playbook_runs(tmp_path / "ansible-artifacts") == [
            (ANS_CANARY, "patch.yml"),
            (ANS_GROUP, "patch.yml"),
        ]
        ansible_dirs = sorted(p.name for p in (tmp_path / "ansible-artifacts").iterdir())
        deployments = sorted(graph.deployments.values(), key=lambda d: d.created)
        found = await asyncio.to_thread(jobs, url)
        assert sorted(found) == sorted(
            [("ansible", "apply", "done", d) for d in ansible_dirs]
            + [("intune", "apply", "done", d.id) for d in deployments]
        ), found
        members = [sorted(graph.audiences[d.audience_id]) for d in deployments]
        aad = {n: graph.by_name(n).aad_id for n in WINDOWS}
        assert members == [[aad[WIN_CANARY]], sorted([aad[WIN_A], aad[WIN_B]])]

        # The audit names each host's backend and job; no SSH reached a Windows device
        commands = await asyncio.to_thread(events, url, "host.command")
        by_host: dict[str, set[str]] = {}
        for c in commands:
            by_host.setdefault(c["host"], set()).add(c["command"])
        for name in WINDOWS:
            assert by_host[name] <= {"intune:assess", "intune:apply"}, by_host[name]
            assert "intune:apply" in by_host[name]
        for name in (ANS_CANARY, ANS_GROUP):
            assert "ansible:apply" in by_host[name], by_host[name]
        for name in (SSH_CANARY, SSH_FLEET):
            assert "apply" in by_host[name], by_host[name]  # by PatchGate's own executor
        applied = {
            c["host"]: c.get("job_id")
            for c in commands
            if str(c["command"]).endswith(":apply") and c.get("job_id")
        }
        assert applied[WIN_CANARY] == deployments[0].id
        assert applied[WIN_A] == applied[WIN_B] == deployments[1].id
        assert {applied[ANS_CANARY], applied[ANS_GROUP]} == set(ansible_dirs)

        # Compliance evidence for the period names every backend and job id; it verifies.
        contents = await verified_evidence(env, tmp_path)
        for word in (
            *LAB,
            *WINDOWS,
            "ansible:apply",
            "intune:apply",
            "KB5046633",
            "KB5046613",
            *ansible_dirs,
            *(d.id for d in deployments),
        ):
            assert word in contents, word
