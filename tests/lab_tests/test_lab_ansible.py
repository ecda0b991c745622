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
            artifacts_dir=tmp_path / "artifacts", known_hosts=kh, forks=10, timeout=int(os.environ.get("AB_TIMEOUT", "300")), **kw
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


async def test_a_batch_reports_applied_failed_and_unreachable_hosts_with_secrets_kept_off_disk_and_argv(
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
        {"lab-ans-1": {"demo-app": "1.1"}, "lab-ans-2": {"demo-app": "1.3"},
         "lab-gone": {"demo-app": "1.1"}},  # fmt: skip
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
    grep = subprocess.run(
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
