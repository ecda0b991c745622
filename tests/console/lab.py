"""Real hosts for ``patchgate console --lab DIR``: ``python -m tests.console.lab DIR`` (as
root) boots the SSH lab's hosts (tests/lab: real sshd, apt and dpkg on loopback
addresses, demo-app 1.0 installed, 1.1 in the lab's apt repository), writes what the
console reads into DIR, and keeps the hosts up until Ctrl-C / SIGTERM:

- ``DIR/inventory.yml``: the hosts (groups dev, staging, prod), user and client key;
- ``DIR/known_hosts``: their host keys (PatchGate verifies them);
- ``DIR/plans/lab.yml``: a plan like the example ``weekly``: dev, staging, then prod
  behind approvals (alice; then alice and bob), health checked over HTTP on each host;
- ``DIR/ready``: written last, once every host answers.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.lab.fixtures import Lab, lab_unavailable
from tests.lab.hosts import LabHost, ssh_port
from tests.lab.image import build_image
from tests.lab.repo import build_demo_repo

GROUPS = (
    ("dev", "lab-dev-01"),
    ("staging", "lab-stg-01"),
    ("prod", "lab-web-01"),
    ("prod", "lab-web-02"),
)
FIRST_INDEX = 81  # 127.x.30.81 onwards

PLAN = """\
# lab.yml: the example weekly plan's shape, on the SSH lab's real hosts.
name: lab
description: dev, staging, then production behind two approvals, on real lab hosts.
packages: {include: ["demo-app"]}
reboot: never
rollback: {on_patch_failure: true, on_health_failure: true, ring_on_budget_exceeded: true}
health_checks:
  - name: demo-app answers
    type: http
    url: "http://{address}:8080/cgi-bin/health"
    retries: 2
    interval: 1s
    timeout: 3s
rings:
  - {name: dev, hosts: group:dev, batch: 1}
  - name: staging
    hosts: group:staging
    batch: 1
    gate: {type: approval, approvers: {users: [U0123ABCDE]}, timeout: 4h}
  - name: production
    hosts: group:prod
    batch: 1
    gate:
      type: approval
      approvers: {users: [U0123ABCDE, U0456FGHIJ]}
      quorum: 2
      timeout: 4h
slack: {channel: C0123456789}
"""


def write_files(out: Path, lab: Lab, hosts: list[tuple[str, LabHost]]) -> None:
    (out / "plans").mkdir(parents=True, exist_ok=True)
    (out / "plans" / "lab.yml").write_text(PLAN)
    (out / "known_hosts").write_text("".join(h.known_hosts_line + "\n" for _, h in hosts))
    lines = [
        "all:",
        f"  vars: {{ansible_user: patchgate, ansible_ssh_private_key_file: '{lab.client_key}'}}",
        "  children:",
    ]
    for group in dict.fromkeys(g for g, _ in hosts):
        members = ", ".join(
            f"{h.name}: {{ansible_host: '{h.address}', ansible_port: {h.port}}}"
            for g, h in hosts
            if g == group
        )
        lines.append(f"    {group}: {{hosts: {{{members}}}}}")
    (out / "inventory.yml").write_text("\n".join(lines) + "\n")


def boot(out: Path) -> tuple[Lab, list[tuple[str, LabHost]]]:
    """The lab (image, repository, key) in ``out/lab`` and its hosts, started."""
    root = out / "lab"
    root.mkdir(parents=True, exist_ok=True)
    key = root / "client_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
        )
    repo, debs = build_demo_repo(root)
    repo.only([debs["demo-app=1.0"], debs["demo-app=1.1"]])
    repo.serve()
    lab = Lab(build_image(), root, repo, debs, key, root / "template")
    hosts: list[tuple[str, LabHost]] = []
    public = key.with_suffix(".pub").read_text().strip()
    try:
        for i, (group, name) in enumerate(GROUPS):
            host = LabHost(
                name=name,
                index=FIRST_INDEX + i,
                image=lab.image,
                state_dir=root / "hosts" / name,
                repo_url=repo.url,
                client_public_key=public,
                port=ssh_port(),
            )
            host.prepare()
            hosts.append((group, host))
            host.start()
            host.sh(
                "apt-get update -qq -o APT::Update::Error-Mode=any && "
                "apt-get install -y -qq demo-app=1.0 >/dev/null",
                timeout=120,
            )
    except BaseException:
        shutdown(lab, hosts)
        raise
    return lab, hosts


def shutdown(lab: Lab, hosts: list[tuple[str, LabHost]]) -> None:
    for _, host in hosts:
        host.stop()
    lab.repo.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.console.lab DIR", file=sys.stderr)
        return 2
    if (why := lab_unavailable()) is not None:
        print(f"lab: {why}", file=sys.stderr)
        return 1
    out = Path(argv[0]).resolve()
    (out / "ready").unlink(missing_ok=True)
    lab, hosts = boot(out)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        write_files(out, lab, hosts)
        (out / "ready").write_text("")
        names = ", ".join(f"{h.name} ({h.address})" for _, h in hosts)
        print(f"lab ready: {names}\nnow run: patchgate console --lab {out}", flush=True)
        stop.wait()
    finally:
        (out / "ready").unlink(missing_ok=True)
        shutdown(lab, hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
