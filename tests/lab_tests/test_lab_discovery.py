"""Discovery, assessment and the emergency path on real hosts.

The `patchgate` command runs as a subprocess against an Ansible YAML inventory of lab
hosts (real sshd, real apt/dpkg, the lab's apt repository), an OSV advisory directory
and a SQLite database; the engine that drives the emergency rollout is the real one with
the SSH executor and the HTTP health checker, on the same database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.settings import Settings
from tests.apikit import ThreadedApi, issue_token
from tests.lab.fixtures import Lab
from tests.lab.hosts import LabHost
from workflows.db import create_database, read_only
from workflows.models import Event, Gate, Host, HostRun, Rollout

PATCHGATE = [sys.executable, "-m", "bot.cli.main"]
OPERATOR, ONCALL, CAB = "U0LABOPS01", "U0ONCALL01", "U0CAB00001"
KERNEL_CVE, APP_CVE = "CVE-2026-11111", "CVE-2026-22222"

PLAN = f"""
name: labfleet
packages: {{min_severity: medium, approve_after_days: 7}}
reboot: never
health_checks:
  - {{name: http, type: http, url: "http://{{address}}:8080/cgi-bin/health",
     retries: 2, interval: 1s, timeout: 3s}}
rings:
  - name: pilot
    hosts: host:lab-d3
  - name: canary
    hosts: group:lab
    sample: 1
    batch: 1
  - name: rest
    hosts: group:lab
    batch: 50%
    gate: {{type: approval, approvers: {{users: [{CAB}]}}, timeout: 24h}}
emergency:
  batch: 1
  approvers: {{users: [{ONCALL}]}}
  gate_timeout: 1h
  skip_rings: [pilot]
"""


def osv(record_id: str, cve: str, package: str, severity: str, published: str) -> str:
    return json.dumps(
        {
            "id": record_id,
            "published": published,
            "aliases": [cve],
            "database_specific": {"severity": severity},
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": package},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}
                    ],
                }
            ],
        }
    )


@dataclass
class Site:
    root: Path
    env: dict[str, str]
    hosts: list[LabHost]
    api: ThreadedApi | None = None

    def cli(self, *argv: str, user: str = OPERATOR) -> tuple[int, str, str]:
        """``patchgate ARGV``; decisions go through serve's API with ``user``'s token."""
        env = dict(self.env)
        if self.api is not None:
            token = issue_token(self.env["PATCHGATE_DATABASE_URL"], user)
            env.update(PATCHGATE_SERVER_URL=self.api.url, PATCHGATE_TOKEN=token)
        result = subprocess.run(
            [*PATCHGATE, *argv],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return result.returncode, result.stdout, result.stderr

    def rows(self, query: sa.Select) -> list:  # type: ignore[type-arg]
        async def fetch() -> list:  # type: ignore[type-arg]
            db = create_database(self.env["PATCHGATE_DATABASE_URL"])
            try:
                async with read_only(db) as session:
                    return list(await session.scalars(query))
            finally:
                await db.dispose()

        return asyncio.run(fetch())


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("discovery")
    hosts: list[LabHost] = []
    try:
        lab.publish_only("demo-app=1.0", "demo-kernel=1.0")
        for i in range(4):
            host = lab.host(f"lab-d{i + 1}", 21 + i)
            host.prepare()
            hosts.append(host)
            host.start()
        entries = "".join(
            f"        {h.name}: {{ansible_host: {h.address}, ansible_port: {h.port}}}\n"
            for h in hosts
        )
        (root / "inventory.yml").write_text(
            "all:\n"
            "  vars:\n"
            "    ansible_user: patchgate\n"
            f"    ansible_ssh_private_key_file: {lab.client_key}\n"
            "  children:\n"
            "    lab:\n"
            "      hosts:\n" + entries
        )
        (root / "known_hosts").write_text("".join(h.known_hosts_line + "\n" for h in hosts))
        (root / "plans").mkdir()
        (root / "plans" / "labfleet.yml").write_text(textwrap.dedent(PLAN))
        feed = root / "osv"
        feed.mkdir()
        # the kernel fix is critical and 10+ days old; the app fix is low (below medium)
        (feed / "DSA-9001-1.json").write_text(
            osv("DSA-9001-1", KERNEL_CVE, "demo-kernel", "critical", "2026-01-02T00:00:00Z")
        )
        (feed / "DSA-9002-1.json").write_text(
            osv("DSA-9002-1", APP_CVE, "demo-app", "low", "2026-01-02T00:00:00Z")
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "PATCHGATE_DATABASE_URL": f"sqlite:///{root / 'pg.db'}",
            "PATCHGATE_PLANS_DIR": str(root / "plans"),
            "PATCHGATE_INVENTORY": str(root / "inventory.yml"),
            "PATCHGATE_OPERATORS": OPERATOR,
            "PATCHGATE_ADVISORIES_OSV_DIR": str(feed),
            "PATCHGATE_SSH_KNOWN_HOSTS": str(root / "known_hosts"),
            "PATCHGATE_SSH_COMMAND_TIMEOUT": "120",
        }
        site = Site(root, env, hosts)
        code, _, err = site.cli("db", "upgrade")
        assert code == 0, err
        server = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=env["PATCHGATE_DATABASE_URL"],
            plans_dir=root / "plans",
            operators=OPERATOR,
        )
        with ThreadedApi(server) as api:
            site.api = api
            yield site
    finally:
        for host in hosts:
            host.stop()


def test_a_inventory_refresh_records_facts_and_reports_a_stopped_host_as_a_gap(
    site: Site,
) -> None:
    code, out, err = site.cli("inventory", "refresh", "--json")
    assert code == 0, err
    assert json.loads(out)["refreshed"] == ["lab-d1", "lab-d2", "lab-d3", "lab-d4"]
    stopped = site.hosts[3]
    stopped.stop()

    code, out, err = site.cli("inventory", "refresh", "--json")

    assert code == 3, err  # gaps make the exit status 3
    data = json.loads(out)
    assert data["refreshed"] == ["lab-d1", "lab-d2", "lab-d3"]
    (gap,) = data["coverage_gaps"]
    assert gap["host"] == "lab-d4" and gap["why"].startswith("unreachable")
    rows = {h.name: h for h in site.rows(sa.select(Host))}
    for lab_host in site.hosts[:3]:
        row = rows[lab_host.name]
        assert (row.os_id, row.package_manager, row.reachable) == ("debian", "apt", True)
        assert row.boot_id == lab_host.boot_id()  # read from the host itself
        assert row.reboot_required is False and row.facts_at is not None
    assert rows["lab-d4"].reachable is False and rows["lab-d4"].facts_at is not None
    code, out, _ = site.cli("inventory", "refresh", "group:lab and not host:lab-d4")
    assert code == 0 and "No coverage gaps." in out


def test_b_an_emergency_for_one_cve_patches_exactly_the_affected_hosts_with_that_fix(
    lab: Lab, site: Site
) -> None:
    d1, d2, d3, _ = site.hosts
    # a vendor release: both fixes published; lab-d3 already has the kernel fix
    lab.publish_only("demo-app=1.0", "demo-app=1.1", "demo-kernel=1.0", "demo-kernel=1.1")
    d3.sh(
        "apt-get update -qq -o APT::Update::Error-Mode=any && "
        "apt-get install -y -qq demo-kernel=1.1 >/dev/null",
        timeout=120,
    )

    code, out, err = site.cli("assess", "--refresh", "--plan", "labfleet", "--json")
    assert code == 0, err
    data = json.loads(out)
    fixes = {h: {f["package"]: f["cves"] for f in v["fixes"]} for h, v in data["hosts"].items()}
    assert fixes["lab-d1"] == {"demo-kernel": [KERNEL_CVE], "demo-app": [APP_CVE]}
    assert fixes["lab-d3"] == {"demo-app": [APP_CVE]}
    assert data["not_assessed"] == ["lab-d4"]
    code, dry, err = site.cli("rollout", "start", "labfleet", "--dry-run")
    assert code == 0, err
    assert "  + lab-d1 demo-kernel -> 1.1" in dry
    assert "  - lab-d1 demo-app -> 1.1: severity low is below medium" in dry

    code, out, err = site.cli("emergency", KERNEL_CVE, "--plan", "labfleet", "--json", user=CAB)
    assert code == 1 and "not an operator" in err  # operators only
    code, out, err = site.cli("emergency", KERNEL_CVE, "--plan", "labfleet", "--json")
    assert code == 0, err
    started = json.loads(out)
    assert (started["affected"], started["packages"]) == (["lab-d1", "lab-d2"], ["demo-kernel"])
    rollout_id = started["rollout"]

    asyncio.run(drive(site))  # the canary ring, then the approval gate of "rest"
    (gate,) = site.rows(sa.select(Gate).where(Gate.rollout_id == rollout_id))
    assert gate.state == "open" and gate.expires_at - gate.opened_at == dt.timedelta(hours=1)
    runs = {r.host_name: r.state for r in site.rows(sa.select(HostRun))}
    assert sorted(runs.values()) == ["healthy", "pending"]  # one canary host done
    hash_prefix = gate.patchset_hash[:12]
    code, _, err = site.cli("rollout", "approve", str(rollout_id), "--hash", hash_prefix, user=CAB)
    assert code == 1 and "not an approver" in err  # the profile's on-call approvers decide
    code, _, err = site.cli(
        "rollout", "approve", str(rollout_id), "--hash", hash_prefix, user=ONCALL
    )
    assert code == 0, err
    asyncio.run(drive(site))

    (rollout,) = site.rows(sa.select(Rollout))
    assert rollout.state == "succeeded" and rollout.emergency
    assert rollout.patchset == {"debian-12-amd64": {"demo-kernel": "1.1"}}
    runs = {r.host_name: r.state for r in site.rows(sa.select(HostRun))}
    assert runs == {"lab-d1": "healthy", "lab-d2": "healthy"}
    for host in (d1, d2):  # dpkg on the host says: the kernel fix once, nothing else
        assert host.installed("demo-kernel") == "1.1"
        assert host.dpkg_installs("demo-kernel", "1.1") == 1
        assert host.installed("demo-app") == "1.0"
        assert host.dpkg_installs("demo-app", "1.1") == 0
    assert d3.dpkg_installs("demo-kernel", "1.1") == 1  # installed by hand before, only
    assert d3.installed("demo-app") == "1.0"
    pinned = next(
        json.loads(e.body)["data"]
        for e in site.rows(sa.select(Event).where(Event.kind == "rollout.pinned"))
    )
    assert pinned["baseline"]["debian-12-amd64"]["source"] == "assessment"
    assert pinned["baseline"]["debian-12-amd64"]["left_out"] == {"demo-app": "not in include"}


async def drive(site: Site) -> None:
    """Run the real engine (SSH executor, HTTP health checks) until it has nothing to do."""
    from bot.app import build_ssh_executor
    from bot.settings import Settings
    from integrations.inventory import FileInventory
    from workflows.clock import SystemClock
    from workflows.engine import Engine, EngineDeps

    fields = {k.removeprefix("PATCHGATE_").lower(): v for k, v in site.env.items()}
    settings = Settings.model_validate(
        {k: v for k, v in fields.items() if k in Settings.model_fields}
    )
    db = create_database(settings.database_url)
    executor, health = build_ssh_executor(settings, db)
    try:
        engine = Engine(
            EngineDeps(
                db=db,
                executor=executor,
                health=health,
                inventory=FileInventory(settings.inventory_sources),
                clock=SystemClock(),
                concurrency=10,
            )
        )
        await asyncio.wait_for(engine.run_until_idle(), 300)
    finally:
        close = getattr(executor, "aclose", None)
        if close is not None:
            await close()
        await db.dispose()
