"""The Ansible backend against real lab hosts: the real ansible-playbook (ansible-core)
run by ansible-runner over real sshd, real apt/dpkg and dnf/rpm, with the example
playbooks (examples/ansible/). Hosts are shared across the module's tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.backends.ansible import AnsibleBackend, AnsibleConfig
from tests.lab.ansible_fixtures import ansible_lab
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from tests.lab.net import lab_octet
from tests.lab.rpm_fixtures import RpmLab, dnf_lab
from tests.lab.rpm_hosts import RpmLabHost
from tests.lab_tests.test_lab_engine import known_hosts
from workflows.backends import BatchWork, JobStatus
from workflows.ports import InventoryHost

__all__ = ["ansible_lab", "dnf_lab"]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "ansible"
OPTIONS = {
    "project_dir": str(PROJECT),
    "playbook": "patch.yml",
    "rollback_playbook": "rollback.yml",
    "assess_playbook": "assess.yml",
}
BECOME_SECRET = "become-Secret-7f3a9c"
PASSPHRASE = "passphrase-Secret-41bd2e"


@pytest.fixture(scope="module")
def hosts(ansible_lab: Lab) -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    try:
        for i in range(2):
            host = ansible_lab.host(f"lab-ans-{i + 1}", 91 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


@pytest.fixture(scope="module")
def dnf_hosts(dnf_lab: RpmLab) -> Iterator[list[RpmLabHost]]:
    started: list[RpmLabHost] = []
    try:
        for i in range(2):
            host = dnf_lab.host(f"lab-ans-dnf-{i + 1}", 94 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


def fresh(host: LabHost) -> None:
    """A fresh disk; the login user owns its home (Ansible keeps its temp files there;
    the lab writes ~/.ssh into the upper dir as root)."""
    host.reset()
    host.sh("chown patchgate: /home/patchgate")


def backend(tmp_path: Path, kh: Path, **kw: Any) -> AnsibleBackend:
    return AnsibleBackend(
        AnsibleConfig(
            artifacts_dir=tmp_path / "artifacts", known_hosts=kh, forks=10, timeout=300, **kw
        )
    )


def work(
    key: str, hosts: list[InventoryHost], versions: dict[str, dict[str, str | None]], **kw: Any
) -> BatchWork:
    return BatchWork(
        key=key,
        action=kw.pop("action", "apply"),
        rollout_id=7,
        ring="lab",
        batch=1,
        hosts=hosts,
        versions=versions,
        patchset_hash="abc123",
        options=kw.pop("options", OPTIONS),
    )


async def run(b: AnsibleBackend, w: BatchWork) -> JobStatus:
    job = await b.submit(w)
    status = await b.follow(job, w.options, wait=240)
    assert status.done, status
    return status


def inventory_host(lab: Lab, host: LabHost, *, key: bool = True) -> InventoryHost:
    return InventoryHost(
        name=host.name,
        address=host.address,
        port=host.port,
        user="patchgate",
        private_key_file=str(lab.client_key) if key else None,
        groups=frozenset({"lab"}),
    )


def nowhere(name: str = "lab-gone") -> InventoryHost:
    """A host nothing listens for (a free loopback address)."""
    return InventoryHost(name=name, address=f"127.{lab_octet()}.30.99", port=22, user="patchgate")


def encrypted_key(lab: Lab, tmp_path: Path) -> Path:
    """The lab's client key, protected by PASSPHRASE (same public key)."""
    key = tmp_path / "client_key_encrypted"
    key.write_bytes(lab.client_key.read_bytes())
    key.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", PASSPHRASE, "-f", str(key)],
        check=True,
        timeout=30,
    )
    return key


def playbook_cmdlines() -> list[bytes]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ansible-playbook" in cmdline or b"ssh" in cmdline.split(b"\0")[0]:
                found.append(cmdline)
    return found


async def test_a_batch_reports_applied_failed_and_unreachable_hosts_with_no_secret_on_disk_or_argv(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    good, bad = hosts
    ansible_lab.publish_only("demo-app=1.0", "demo-app=1.1", "demo-app=1.3")
    fresh(good)
    fresh(bad)
    kh = known_hosts(tmp_path, hosts)
    key = encrypted_key(ansible_lab, tmp_path)
    b = backend(
        tmp_path, kh, ssh_key=key, ssh_key_passphrase=PASSPHRASE, become_password=BECOME_SECRET
    )
    inventory = [
        inventory_host(ansible_lab, good, key=False),
        inventory_host(ansible_lab, bad, key=False),
        nowhere(),
    ]
    w = work(
        "rollout-7/lab/1/apply",
        inventory,
        {
            "lab-ans-1": {"demo-app": "1.1"},
            "lab-ans-2": {"demo-app": "1.3"},
            "lab-gone": {"demo-app": "1.1"},
        },
    )
    job = await b.submit(w)
    seen: list[bytes] = []
    status = await b.follow(job, OPTIONS, wait=0)
    while not status.done:
        seen.extend(playbook_cmdlines())
        status = await b.follow(job, OPTIONS, wait=0.3)
    assert status.state == "failed", status

    ok, failed, gone = (status.hosts[n] for n in ("lab-ans-1", "lab-ans-2", "lab-gone"))
    assert (ok.status, dict(ok.before), dict(ok.after)) == (
        "applied", {"demo-app": "1.0"}, {"demo-app": "1.1"}
    )  # fmt: skip
    assert good.installed("demo-app") == "1.1"
    assert failed.status == "failed"
    assert failed.failed_task == "Install the pinned versions with apt"
    assert "demo-app" in failed.output and "1.3" in failed.output, failed.output
    assert dict(failed.before) == {"demo-app": "1.0"}
    assert gone.status == "unreachable" and gone.output

    # secrets: never on a command line, never in the artifacts kept on disk
    assert seen, "no ansible-playbook process was seen while the run went"
    assert not [c for c in seen if BECOME_SECRET.encode() in c or PASSPHRASE.encode() in c]
    artifacts = tmp_path / "artifacts"
    grep = subprocess.run(  # noqa: ASYNC221
        ["grep", "-r", "-l", "-e", BECOME_SECRET, "-e", PASSPHRASE, str(artifacts)],
        capture_output=True,
        text=True,
    )
    assert grep.returncode == 1, grep.stdout  # 1: no match anywhere
    assert (artifacts / job.job_id / "artifacts" / job.job_id / "job_events").is_dir()

    # rollback by the rollback playbook to the recorded versions (1.3 left dpkg half-configured)
    back = work(
        "rollout-7/lab/1/rollback",
        inventory[:2],
        {"lab-ans-1": {"demo-app": "1.0"}, "lab-ans-2": {"demo-app": "1.0"}},
        action="rollback",
    )
    status = await run(b, back)
    assert status.state == "successful", status
    assert {n: (h.status, dict(h.after)) for n, h in status.hosts.items()} == {
        "lab-ans-1": ("applied", {"demo-app": "1.0"}),
        "lab-ans-2": ("applied", {"demo-app": "1.0"}),
    }
    assert good.installed("demo-app") == "1.0" and bad.installed("demo-app") == "1.0"


async def test_a_changed_host_key_is_refused_and_the_host_reported_unreachable(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    fresh(host)
    kh = tmp_path / "known_hosts"
    other = hosts[1].host_key_pub  # another host's key under this host's address
    target = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    kh.write_text(f"{target} {other}\n")
    b = backend(tmp_path, kh)
    status = await run(
        b, work("hostkey-1", [inventory_host(ansible_lab, host)], {host.name: {"demo-app": "1.1"}})
    )
    outcome = status.hosts[host.name]
    assert outcome.status == "unreachable"
    assert "Host key verification failed" in outcome.output, outcome.output
    assert host.installed("demo-app") == "1.0"
    command = (b.workspace.artifact_dir(status.job.job_id) / "command").read_text()
    assert "StrictHostKeyChecking=yes" in command and str(kh.resolve()) in command


async def test_assess_reports_pending_updates_and_an_unreachable_host_with_its_error(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    ansible_lab.publish_only("demo-app=1.0", "demo-app=1.1")
    fresh(host)
    b = backend(tmp_path, known_hosts(tmp_path, hosts))
    found = await b.assess([inventory_host(ansible_lab, host), nowhere()], OPTIONS)
    by = {a.host: a for a in found}
    assert by[host.name].error is None, by[host.name]
    assert [(p.name, p.current, p.candidate) for p in by[host.name].upgradable] == [
        ("demo-app", "1.0", "1.1")
    ]
    facts = by[host.name].facts
    assert facts is not None and (facts.package_manager, facts.os_id) == ("apt", "debian")
    assert (by["lab-gone"].reachable, bool(by["lab-gone"].error)) == (False, True)
    assert host.installed("demo-app") == "1.0"  # assessing changes nothing


async def test_hosts_lists_the_plans_inventory_through_ansible_inventory(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # runner looks ansible-inventory up on PATH (a deployment installs ansible-core there)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        textwrap.dedent(f"""\
        all:
          children:
            web:
              hosts:
                lab-ans-1: {{ansible_host: {hosts[0].address}, ansible_port: {hosts[0].port},
                             ansible_user: patchgate}}
            db:
              hosts:
                lab-ans-2: {{ansible_host: {hosts[1].address}, ansible_become: false}}
        """)
    )
    b = backend(tmp_path, tmp_path / "kh")
    options = {**OPTIONS, "inventory": str(inv)}
    assert b.capabilities(options).inventory
    listed = {h.name: h for h in await b.hosts(options)}
    assert set(listed) == {"lab-ans-1", "lab-ans-2"}
    first = listed["lab-ans-1"]
    assert (first.address, first.user) == (hosts[0].address, "patchgate")
    assert listed["lab-ans-1"].groups == frozenset({"web"})
    assert listed["lab-ans-2"].become is False


CRASHER = """
import asyncio, sys
from pathlib import Path
from integrations.backends.ansible import AnsibleBackend, AnsibleConfig
from workflows.backends import BatchWork
from workflows.ports import InventoryHost

async def main():
    config = AnsibleConfig(artifacts_dir=Path(sys.argv[1]), known_hosts=Path(sys.argv[2]))
    b = AnsibleBackend(config)
    host = InventoryHost(name=sys.argv[3], address=sys.argv[4], port=int(sys.argv[5]),
                         user="patchgate", private_key_file=sys.argv[6])
    await b.submit(BatchWork(key="crash-1", action="apply", rollout_id=1, ring="lab", batch=1,
        hosts=[host], versions={host.name: {"demo-app": "1.1"}},
        options={"project_dir": sys.argv[7], "playbook": "patch.yml"}))
    print("submitted", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_find_after_the_process_that_ran_it_is_gone_reports_what_the_artifacts_say(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[1]
    ansible_lab.publish_only("demo-app=1.0", "demo-app=1.1")
    fresh(host)
    host.sh("echo 'DPkg::Pre-Invoke {\"sleep 7\";};' > /etc/apt/apt.conf.d/99slow")
    kh = known_hosts(tmp_path, hosts)
    artifacts = tmp_path / "artifacts"
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    args = [str(artifacts), str(kh), host.name, host.address, str(host.port)]
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, str(script), *args, str(ansible_lab.client_key), str(PROJECT)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"submitted"
        b = backend(tmp_path, kh)
        job = await b.find("crash-1", OPTIONS)
        assert job is not None and await b.find("crash-2", OPTIONS) is None
        running = await b.follow(job, OPTIONS, wait=0)
        assert (running.done, running.state) == (False, "running"), running
        for _ in range(600):  # bounded: until dpkg is at work on the host
            if "sleep 7" in host.sh("ps -eo args="):
                break
            await asyncio.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 180
    status = await b.follow(job, OPTIONS, wait=0)
    while not status.done and time.monotonic() < deadline:
        status = await b.follow(job, OPTIONS, wait=1)
    assert status.done, status
    assert status.state == "interrupted", status
    outcome = status.hosts[host.name]
    assert outcome.status == "failed" and "interrupted" in outcome.output
    assert dict(outcome.before) == {"demo-app": "1.0"}  # what the artifacts recorded
    again = await b.submit(
        work("crash-1", [inventory_host(ansible_lab, host)], {host.name: {"demo-app": "1.1"}})
    )
    assert again == job  # the key is known: nothing is started twice


async def test_a_dnf_batch_applies_fails_a_bad_post_scriptlet_and_rolls_back(
    dnf_lab: RpmLab, dnf_hosts: list[RpmLabHost], tmp_path: Path
) -> None:
    good, bad = dnf_hosts
    dnf_lab.publish_only(
        "lab-base=1.0", "demo-app=1.0", "demo-app=1.1", "demo-app=1.3", "demo-kernel=1.0"
    )
    fresh(good)
    fresh(bad)
    b = backend(tmp_path, known_hosts(tmp_path, list(dnf_hosts)))
    inventory = [inventory_host(dnf_lab, good), inventory_host(dnf_lab, bad), nowhere()]
    pins = {
        good.name: {"demo-app": "1.1-1"},
        bad.name: {"demo-app": "1.3-1"},
        "lab-gone": {"demo-app": "1.1-1"},
    }
    status = await run(b, work("dnf-1", inventory, pins))
    ok, failed = status.hosts[good.name], status.hosts[bad.name]
    assert (ok.status, dict(ok.before), dict(ok.after)) == (
        "applied",
        {"demo-app": "1.0-1"},
        {"demo-app": "1.1-1"},
    )
    assert good.installed("demo-app") == "1.1-1"
    assert (failed.status, failed.failed_task) == ("failed", "Fail when an rpm scriptlet failed")
    assert "scriptlet" in failed.output and "demo-app" in failed.output, failed.output
    assert dict(failed.after) == {"demo-app": "1.3-1"}  # reported even though it failed
    assert status.hosts["lab-gone"].status == "unreachable"

    back = await run(
        b,
        work(
            "dnf-1-back",
            inventory[:2],
            {good.name: {"demo-app": "1.0-1"}, bad.name: {"demo-app": "1.0-1"}},
            action="rollback",
        ),
    )
    assert {n: (h.status, dict(h.after)) for n, h in back.hosts.items()} == {
        good.name: ("applied", {"demo-app": "1.0-1"}),
        bad.name: ("applied", {"demo-app": "1.0-1"}),
    }
    assert good.installed("demo-app") == "1.0-1" and bad.installed("demo-app") == "1.0-1"


async def test_the_reboot_playbook_reboots_the_batch_and_the_host_comes_back_with_a_new_boot(
    ansible_lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = hosts[0]
    fresh(host)
    before = host.boot_id()
    b = backend(tmp_path, known_hosts(tmp_path, hosts))
    options = {**OPTIONS, "reboot_playbook": "reboot.yml"}
    assert b.capabilities(options).reboot and not b.capabilities(OPTIONS).reboot
    status = await run(
        b,
        work("reboot-1", [inventory_host(ansible_lab, host)], {}, action="reboot", options=options),
    )
    assert status.state == "successful", status
    assert status.hosts[host.name].status == "applied"
    assert host.boot_id() != before
