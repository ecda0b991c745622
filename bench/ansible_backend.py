"""The Ansible backend against the SSH executor: wall time and client CPU per host for
one batch (demo-app 1.0 -> 1.1 on every host), on the same lab hosts, in the same run.

    sudo .venv/bin/python bench/ansible_backend.py              # 4 hosts, 2 rounds
    sudo .venv/bin/python bench/ansible_backend.py --hosts 8 --rounds 3

Hosts: real lab hosts (tests/lab/: sshd + dpkg/apt, the image with python3 for
Ansible's modules), reset to a fresh disk with demo-app 1.0 and fresh apt lists before
every measured batch. The SSH executor applies each host concurrently in-process
(Fabric, its thread pool); the Ansible backend runs examples/ansible/patch.yml once for
the batch (ansible-runner -> ansible-playbook, forks = hosts), which also refreshes apt's
lists (update_cache) and reads package facts before and after: the playbook's real cost.

Client CPU = user+sys of this process plus every descendant reaped (ansible-playbook,
its forks, ssh); the bench is a child subreaper and ends ssh's ControlPersist masters
after each run so their CPU is counted. Host-side CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integrations.backends.ansible import AnsibleBackend, AnsibleConfig  # noqa: E402
from integrations.ssh import SshExecutor, SshOptions  # noqa: E402
from tests.lab.ansible_image import build_image  # noqa: E402
from tests.lab.hosts import LabHost, ssh_port  # noqa: E402
from tests.lab.repo import build_demo_repo  # noqa: E402
from workflows.backends import BatchWork  # noqa: E402
from workflows.ports import InventoryHost  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def reap_orphans() -> None:
    """End and reap what was re-parented to us (ssh ControlPersist masters); the hosts'
    PID 1s are running and not reaped here."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == me and "ssh" in (entry / "comm").read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def setup(root: Path, count: int) -> tuple[list[LabHost], Path, Path, object]:
    image = build_image()
    key = root / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    repo, debs = build_demo_repo(root)
    repo.serve()
    repo.only([debs["demo-app=1.0"], debs["demo-app=1.1"]])
    seed = LabHost("bench-seed", 204, image, root / "seed", repo.url,
                   key.with_suffix(".pub").read_text().strip(), ssh_port())  # fmt: skip
    seed.prepare()
    seed.start()
    seed.sh("apt-get update -qq && apt-get install -y -qq demo-app=1.0 >/dev/null", timeout=120)
    seed.stop()
    template = root / "template"
    subprocess.run(["cp", "-a", str(root / "seed" / "upper"), str(template)], check=True)
    for rel in ("etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "lab/boot_id"):
        (template / rel).unlink(missing_ok=True)
    hosts = []
    for i in range(count):
        host = LabHost(f"bench-{i + 1}", 160 + i, image, root / "hosts" / f"bench-{i + 1}",
                       repo.url, key.with_suffix(".pub").read_text().strip(), ssh_port(),
                       template=template)  # fmt: skip
        host.prepare()
        host.start()
        hosts.append(host)
    kh = root / "known_hosts"
    kh.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    return hosts, key, kh, repo


def drain() -> None:
    """Reap every child already gone: a reset host's PID 1 is re-parented to this
    subreaper when its unshare is killed, carrying the host side's CPU; reaping it
    inside a measurement would count the hosts' work as the client's."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def fresh(hosts: list[LabHost]) -> None:
    for host in hosts:
        host.reset()
        host.sh("chown patchgate: /home/patchgate && apt-get update -qq", timeout=60)
    time.sleep(0.5)
    drain()


def inventory(hosts: list[LabHost], key: Path) -> list[InventoryHost]:
    return [
        InventoryHost(
            name=h.name, address=h.address, port=h.port, user="patchgate", private_key_file=str(key)
        )
        for h in hosts
    ]


async def run_ssh(hosts: list[LabHost], key: Path, kh: Path, n: int) -> tuple[float, float]:
    inv = inventory(hosts, key)
    start_cpu, start = cpu(), time.perf_counter()
    ex = SshExecutor(SshOptions(known_hosts=kh, concurrency=max(n, 1), command_timeout=300))
    try:
        results = await asyncio.gather(
            *(
                ex.apply(h, {"demo-app": "1.1"}, op_id=f"bench-{time.time_ns()}-{h.name}")
                for h in inv
            )
        )
    finally:
        ex.close()
    wall, used = time.perf_counter() - start, cpu() - start_cpu
    assert all(r.after.get("demo-app") == "1.1" for r in results), results
    return wall, used


async def run_ansible(
    hosts: list[LabHost], key: Path, kh: Path, n: int, artifacts: Path
) -> tuple[float, float]:
    inv = inventory(hosts, key)
    options = {"project_dir": str(ROOT / "examples" / "ansible"), "playbook": "patch.yml"}
    start_cpu, start = cpu(), time.perf_counter()
    backend = AnsibleBackend(AnsibleConfig(artifacts_dir=artifacts, known_hosts=kh, forks=n))
    work = BatchWork(key=f"bench-{time.time_ns()}", action="apply", rollout_id=1, ring="bench",
                     batch=1, hosts=inv, versions={h.name: {"demo-app": "1.1"} for h in inv},
                     options=options)  # fmt: skip
    job = await backend.submit(work)
    status = await backend.follow(job, options, wait=600)
    wall = time.perf_counter() - start
    reap_orphans()
    used = cpu() - start_cpu
    backend.close()
    assert status.done and all(o.status == "applied" for o in status.hosts.values()), status
    return wall, used


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    with tempfile.TemporaryDirectory(prefix="patchgate-bench-ansible-") as tmp:
        root = Path(tmp)
        hosts, key, kh, repo = setup(root, args.hosts)
        figures: dict[str, list[tuple[float, float]]] = {"ssh": [], "ansible": []}
        try:
            for r in range(args.rounds):
                for tool in ("ssh", "ansible"):
                    fresh(hosts)
                    if tool == "ssh":
                        figures[tool].append(await run_ssh(hosts, key, kh, args.hosts))
                    else:
                        art = root / f"artifacts-{r}"
                        figures[tool].append(await run_ansible(hosts, key, kh, args.hosts, art))
                    wall, used = figures[tool][-1]
                    print(
                        f"round {r + 1} {tool:8} wall {wall:6.2f} s  cpu {used:6.2f} s", flush=True
                    )
        finally:
            for host in hosts:
                host.stop()
            repo.stop()  # type: ignore[attr-defined]
    n = args.hosts
    print(f"\n{n} hosts per batch, median of {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    med = {t: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for t, v in figures.items()}  # fmt: skip
    for tool, (wall, used) in med.items():
        print(f"{tool:8} batch wall {wall:6.2f} s  wall/host {wall / n * 1000:7.0f} ms  "
              f"client cpu/host {used / n * 1000:7.0f} ms")  # fmt: skip
    ratio_wall = med["ansible"][0] / med["ssh"][0]
    ratio_cpu = med["ansible"][1] / med["ssh"][1]
    print(f"ansible / ssh: wall {ratio_wall:.2f}x, client cpu {ratio_cpu:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
