"""The crash harness (tests/e2e/crash.py) on real hosts: ``patchgate serve`` with the SSH
executor runs a three-ring rollout over three lab hosts (real sshd, apt and dpkg), is
SIGKILLed at a sample of persisted steps, and a new ``serve`` finishes it. Every host
installed the new version exactly once by dpkg's own log, none skipped, each gate
decided once, Slack messages delivered once, the audit chain verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbutil import fresh_database_url
from tests.e2e.crash import APPROVERS, CHANNEL, CrashRun, Scenario
from tests.e2e.harness import migrate
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost

NAMES = ("lab-dev", "lab-stg", "lab-prod")
PLAN = f"""\
name: crash
packages: {{include: ["demo-app"]}}
reboot: never
health_checks:
  - name: http
    type: http
    url: "http://{{address}}:8080/cgi-bin/health"
    retries: 2
    interval: 1s
    timeout: 3s
rings:
  - {{name: dev, hosts: group:dev, batch: 1}}
  - name: staging
    hosts: group:staging
    batch: 1
    gate: {{type: approval, approvers: {{users: [{APPROVERS[0]}]}}, timeout: 4h}}
  - name: prod
    hosts: group:prod
    batch: 1
    gate:
      type: approval
      approvers: {{users: [{APPROVERS[0]}, {APPROVERS[1]}]}}
      quorum: 2
      timeout: 4h
slack: {{channel: {CHANNEL}}}
jira: {{project: OPS, issue_type: Task}}
"""
# The default run kills once on the lab: after a host's apt-get returned, before its
# result was recorded (the next serve must find the operation by its id on the host, not
# install again). More points (a minute or two each here) are marked slow.
KILL_POINTS = [
    "host.apply.returned:2",
    *(
        pytest.param(point, marks=pytest.mark.slow)
        for point in ("host.apply.intent:1", "batch.done:1", "gate.passed:2")
    ),
]


@pytest.fixture(scope="module")
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    try:
        for i, name in enumerate(NAMES):
            host = lab.host(name, 61 + i)
            host.prepare()
            started.append(host)
            host.start()
        yield started
    finally:
        for host in started:
            host.stop()


def lab_scenario(lab: Lab, hosts: list[LabHost], tmp: Path) -> Scenario:
    known = tmp / "known_hosts"
    known.write_text("".join(h.known_hosts_line + "\n" for h in hosts))
    groups = dict(zip(("dev", "staging", "prod"), hosts, strict=True))
    inventory = (
        "all:\n"
        f"  vars: {{ansible_user: patchgate, ansible_ssh_private_key_file: '{lab.client_key}'}}\n"
        "  children:\n"
        + "".join(
            f"    {group}: {{hosts: {{{h.name}: "
            f"{{ansible_host: '{h.address}', ansible_port: {h.port}}}}}}}\n"
            for group, h in groups.items()
        )
    )

    def applied() -> dict[str, int]:
        return {h.name: h.dpkg_installs("demo-app", "1.1") for h in hosts}

    return Scenario(
        plan=PLAN,
        inventory=inventory,
        expected_runs=dict.fromkeys(NAMES, "healthy"),
        tickets=0,
        env={
            "PATCHGATE_EXECUTOR": "ssh",
            "PATCHGATE_SSH_KNOWN_HOSTS": str(known),
            "PATCHGATE_SSH_COMMAND_TIMEOUT": "120",
        },
        applied=applied,
    )


@pytest.mark.parametrize("kill_at", KILL_POINTS)
async def test_a_serve_killed_at_a_step_on_the_lab_finishes_with_each_host_installed_once(
    lab: Lab, hosts: list[LabHost], kill_at: str, tmp_path: Path
) -> None:
    lab.publish_only("demo-app=1.0", "demo-app=1.1")
    for host in hosts:
        host.reset()
    assert [h.installed("demo-app") for h in hosts] == ["1.0"] * 3
    with fresh_database_url("sqlite", tmp_path) as url:
        migrate(url, tmp_path)
        run = CrashRun(
            url,
            tmp_path,
            kill_at=kill_at,
            record_steps=False,
            scenario=lab_scenario(lab, hosts, tmp_path),
            timeout=300,
        )
        outcome = await run.run()
    assert outcome.kills == 1, f"{kill_at} was never reached"
    assert [h.installed("demo-app") for h in hosts] == ["1.1"] * 3
