"""One ansible-runner run per job, in a private data dir kept per job under the
artifacts directory (the evidence of what was run, and how find() finds it after a
crash):

    <artifacts_dir>/<job_id>/
        patchgate.json          the job: key, action, ids, hosts, owner process
        env/extravars           the extra vars (no secrets)
        inventory/hosts.json    the generated inventory (when the plan gives none)
        artifacts/<job_id>/     runner's: job_events/, stdout, command, status, rc

Secrets never touch the disk or a command line: the become password and the key
passphrase answer ansible-playbook's and ssh-add's prompts through runner's
``passwords`` (pexpect); the key itself goes through runner's ``ssh_key`` (a FIFO read
by ssh-agent, removed at once). Runner writes the run's environment into its
``command`` artifact, so the environment handed to ansible-playbook is PatchGate's
minus every ``PATCHGATE_*`` variable and every name that looks like a secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_runner import Runner, RunnerConfig

from workflows.ports import InventoryHost

JOB_MARKER = "PATCHGATE_ANSIBLE_JOB"
META = "patchgate.json"
_SECRETISH = re.compile(r"TOKEN|SECRET|PASSWORD|PASSPHRASE|PASSWD|CREDENTIAL", re.I)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
FINAL_STATES = ("successful", "failed", "timeout", "canceled")


@dataclass(frozen=True)
class AnsibleConfig:
    """What the Ansible backend needs from the settings (built in bot/app.py)."""

    artifacts_dir: Path
    known_hosts: Path
    forks: int = 50
    timeout: int = 1800  # seconds for one run; runner kills it after that
    connect_timeout: int = 10
    ssh_key: Path | None = None  # loaded into the run's own ssh-agent
    ssh_key_passphrase: str | None = field(default=None, repr=False)
    become_password: str | None = field(default=None, repr=False)


def job_id_for(key: str) -> str:
    """A directory name for a key: readable prefix + hash (keys may hold any character)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', key)[:60]}-{digest}"


def generated_inventory(hosts: Sequence[InventoryHost]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for host in hosts:
        hostvars: dict[str, Any] = {
            "ansible_host": host.connect_address,
            "ansible_port": host.port,
            "ansible_become": host.become,
        }
        if host.user:
            hostvars["ansible_user"] = host.user
        if host.private_key_file:
            hostvars["ansible_ssh_private_key_file"] = host.private_key_file
        table[host.name] = hostvars
    return {"all": {"hosts": table}}


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner_alive(owner: Mapping[str, Any]) -> bool:
    """The process that started a run is still the same live process."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("boot_id") != _boot_id():
        return False
    return _process_start(pid) == owner.get("start")


def orphans(job_id: str) -> list[int]:
    """Processes of this run still alive after their runner is gone (they carry the
    job's marker in their environment)."""
    marker = f"{JOB_MARKER}={job_id}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def run_environment(env: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The run's environment: PatchGate's minus ``PATCHGATE_*`` and secret-looking names;
    the interpreter's own bin directory first on PATH when ansible-core is installed
    there (a virtualenv not activated)."""
    clean = {
        k: v for k, v in env.items() if not k.startswith("PATCHGATE_") and not _SECRETISH.search(k)
    }
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        clean["PATH"] = os.pathsep.join([str(here), clean.get("PATH", os.defpath)])
    clean.update(extra)
    return clean


@dataclass
class Run:
    """A run this process started: runner's thread and object."""

    thread: threading.Thread
    runner: Runner


class Workspace:
    """The job directories under the artifacts directory."""

    def __init__(self, config: AnsibleConfig) -> None:
        self.config = config

    def job_dir(self, job_id: str) -> Path:
        return self.config.artifacts_dir / job_id

    def artifact_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "artifacts" / job_id

    def meta(self, job_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.job_dir(job_id) / META).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def events(self, job_id: str) -> list[dict[str, Any]]:
        folder = self.artifact_dir(job_id) / "job_events"
        loaded: list[tuple[int, dict[str, Any]]] = []
        for path in folder.glob("*.json") if folder.is_dir() else ():
            head = path.name.split("-", 1)[0]
            if not head.isdigit():
                continue  # runner's "-partial" files
            try:
                loaded.append((int(head), json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return [event for _, event in sorted(loaded, key=lambda item: item[0])]

    def final_state(self, job_id: str) -> str | None:
        try:
            state = (self.artifact_dir(job_id) / "status").read_text().strip()
        except OSError:
            return None
        return state if state in FINAL_STATES else None

    def stdout_tail(self, job_id: str, limit: int = 2000) -> str:
        try:
            text = (self.artifact_dir(job_id) / "stdout").read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]

    def start(
        self,
        *,
        job_id: str,
        meta: Mapping[str, Any],
        project_dir: str,
        playbook: str,
        inventory: str | None,
        hosts: Sequence[InventoryHost],
        extravars: Mapping[str, Any],
        limit: Sequence[str],
        on_finish: Any = None,
    ) -> Run:
        """Write the job's directory and start ansible-playbook in a thread of its own."""
        folder = self.job_dir(job_id)
        if folder.exists() and not (folder / META).exists():
            shutil.rmtree(folder)  # a start cut before its record was written: never ran
        (folder / "env").mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)
        owner = {"pid": os.getpid(), "start": _process_start(os.getpid()), "boot_id": _boot_id()}
        (folder / META).write_text(json.dumps({**meta, "owner": owner}, sort_keys=True))
        (folder / "env" / "extravars").write_text(json.dumps(dict(extravars), sort_keys=True))
        if inventory is None:
            (folder / "inventory").mkdir(mode=0o700)
            path = folder / "inventory" / "hosts.json"
            path.write_text(json.dumps(generated_inventory(hosts), sort_keys=True))
            inventory = str(path)
        config = self.config
        cmdline: list[str] = ["--forks", str(config.forks)]
        passwords: dict[str, str] = {}
        if config.become_password is not None:
            cmdline.append("--ask-become-pass")
            passwords[r"^BECOME password.*:\s*?$"] = config.become_password
        if config.ssh_key_passphrase is not None:
            # ssh-add's prompt names the FIFO's long path: pexpect looks at the last 100
            # characters only, so match its end ("...ssh_key_data: ")
            passwords[r"ssh_key_data:\s*?$"] = config.ssh_key_passphrase
        ssh_key = config.ssh_key.read_text() if config.ssh_key is not None else None
        rc = RunnerConfig(
            private_data_dir=str(folder),
            project_dir=str(Path(project_dir).resolve()),
            playbook=playbook,
            inventory=str(Path(inventory).resolve()),
            ident=job_id,
            limit=",".join(limit),
            cmdline=" ".join(cmdline),
            passwords=passwords or None,
            ssh_key=ssh_key,
            timeout=config.timeout,
            suppress_env_files=True,
            quiet=True,
            rotate_artifacts=0,
        )
        rc.prepare()
        ssh_args = (
            "-o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={shlex.quote(str(config.known_hosts.resolve()))} "
            "-o GlobalKnownHostsFile=/dev/null"
        )
        # Runner copies the whole environment into the run and into its "command"
        # artifact: hand it a clean one (no PatchGate setting, nothing secret-looking).
        rc.env = run_environment(
            rc.env,
            {
                JOB_MARKER: job_id,
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "ANSIBLE_SSH_ARGS": ssh_args,
                "ANSIBLE_TIMEOUT": str(config.connect_timeout),
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
                "ANSIBLE_NOCOLOR": "1",
            },
        )
        runner = Runner(config=rc, cancel_callback=lambda: False, finished_callback=on_finish)
        thread = threading.Thread(target=runner.run, name=f"ansible-{job_id}", daemon=True)
        thread.start()
        return Run(thread=thread, runner=runner)

    def prune(
        self, *, older_than: float, now: float | None = None, keep: Set[str] = frozenset()
    ) -> list[str]:
        """Delete the job directories untouched for ``older_than`` seconds, except those
        in ``keep`` and those whose run may still be going (owner alive without a final
        status, or orphaned processes). Returns the ids removed."""
        cutoff = (time.time() if now is None else now) - older_than
        removed: list[str] = []
        root = self.config.artifacts_dir
        for folder in sorted(root.iterdir()) if root.is_dir() else ():
            meta = self.meta(folder.name)
            if meta is None or folder.name in keep:
                continue  # not a job directory of ours, or in use here
            newest = max(
                (p.stat().st_mtime for p in folder.rglob("*") if p.is_file()),
                default=folder.stat().st_mtime,
            )
            if newest >= cutoff:
                continue
            if self.final_state(folder.name) is None and (
                owner_alive(meta.get("owner") or {}) or orphans(folder.name)
            ):
                continue
            shutil.rmtree(folder)
            removed.append(folder.name)
        return removed


def prune_artifacts(
    artifacts_dir: Path, *, older_than: float, now: float | None = None
) -> list[str]:
    """Retention: delete the Ansible backend's job directories older than ``older_than``
    seconds (see Workspace.prune). For the retention job; needs no backend instance."""
    return Workspace(AnsibleConfig(artifacts_dir=artifacts_dir, known_hosts=Path())).prune(
        older_than=older_than, now=now
    )
