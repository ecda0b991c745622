"""`patchgate assess --refresh` on a dnf host takes the host's own advisories (advisory
id, severity, CVEs, fixed versions) into its findings, and `patchgate emergency` finds
that host by a CVE only the host's data names. Real SQLite, the recording executor."""

from __future__ import annotations

import json
import textwrap
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.cli.main import main
from integrations.testing.executor import RecordingExecutor
from tests.apikit import serve_for_env

OPERATOR = "U0OPERATOR"
CVE = "CVE-2024-2511"

PLAN = """
name: fleet
packages: {include: ["*"]}
rings:
  - {name: all, hosts: all}
emergency:
  batch: 1
"""

INVENTORY = """
hosts:
  - {name: rhel-01, groups: [rhel], criticality: critical}
  - {name: rhel-02, groups: [rhel]}
  - {name: deb-01, groups: [debian]}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "fleet.yml").write_text(textwrap.dedent(PLAN))
    (tmp_path / "inventory.yml").write_text(textwrap.dedent(INVENTORY))
    state = tmp_path / "sim.json"
    sim = RecordingExecutor(state_file=state)
    sim.state.repo = {"openssl": ["3.0.7-24.el9", "3.0.7-27.el9"], "vim": ["9.0", "9.1"]}
    sim.state.advisories = [
        {
            "id": "RHSA-2024:3501",
            "packages": {"openssl": "3.0.7-27.el9"},
            "cves": [CVE],
            "severity": "high",
            "published": "2024-05-02T00:00:00+00:00",
        }
    ]
    sim.add_host("rhel-01", {"openssl": "3.0.7-24.el9", "vim": "9.0"}, package_manager="dnf")
    sim.add_host("rhel-02", {"openssl": "3.0.7-24.el9"}, package_manager="dnf")
    sim.add_host("deb-01", {"openssl": "3.0.7-24.el9"})  # apt: no host-side advisories
    sim.fail("rhel-02", "host_advisories", "error")
    sim.save()
    for key, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}",
        "PLANS_DIR": str(tmp_path / "plans"),
        "INVENTORY": str(tmp_path / "inventory.yml"),
        "OPERATORS": OPERATOR,
        "EXECUTOR": "recording",
        "RECORDING_STATE_FILE": str(state),
    }.items():
        monkeypatch.setenv(f"PATCHGATE_{key}", value)
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_a_dnf_hosts_own_advisories_reach_its_findings_and_the_emergency_path(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = run(capsys, "assess", "--refresh", "--json")
    assert code == 0
    data = json.loads(out)
    fixes = {f["package"]: f for f in data["hosts"]["rhel-01"]["fixes"]}
    openssl = fixes["openssl"]
    assert openssl["advisories"] == ["RHSA-2024:3501"] and openssl["cves"] == [CVE]
    assert openssl["severity"] == "high" and openssl["published"].startswith("2024-05-02")
    assert openssl["reasons"][0] == "severity high"
    assert fixes["vim"]["advisories"] == [] and fixes["vim"]["severity"] is None
    # the Debian host has the same package but no host-side data (and no OSV feed here)
    (deb_fix,) = data["hosts"]["deb-01"]["fixes"]
    assert deb_fix["advisories"] == [] and deb_fix["cves"] == []
    # a dnf host whose advisory listing failed is not assessed without it
    assert "rhel-02" in data["not_assessed"]

    with ExitStack() as stack:  # the emergency is a decision: through serve's API
        serve_for_env(monkeypatch, stack, OPERATOR)
        code, out = run(capsys, "emergency", CVE, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["affected"] == ["rhel-01"] and result["packages"] == ["openssl"]
