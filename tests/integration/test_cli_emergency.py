"""`patchgate inventory refresh`, `assess` and `emergency` against a real SQLite database,
the recording executor (hosts simulated in a state file) and a test advisory feed;
``emergency`` decides through serve's API with the operator's token (``tests.apikit``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli.main import main
from integrations.inventory import FileInventory
from integrations.testing.executor import RecordingExecutor
from tests.apikit import serve_for_env
from workflows.db import create_database, read_only
from workflows.engine import layout_rollout
from workflows.models import Event, Host, Rollout
from workflows.plans import PatchPlan

FEED = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"
OPERATOR = "U0OPERATOR"

PLAN = """
name: fleet
packages: {security_only: true, approve_after_days: 100000}
rings:
  - name: early
    hosts: group:lab
  - name: canary
    hosts: group:web
    gate: {type: approval, approvers: {users: [U0SLOWAPPR]}}
  - name: rest
    hosts: not group:web and not group:lab
emergency:
  batch: 1
  approvers: {users: [U0ONCALL1]}
  gate_timeout: 30m
  skip_rings: [early]
"""

INVENTORY = """
hosts:
  - {name: web-01, groups: [web], internet_facing: true, criticality: high}
  - {name: web-02, groups: [web]}
  - {name: db-01, groups: [db], criticality: critical}
  - {name: lab-01, groups: [lab]}
  - {name: gone-01, groups: [db]}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "fleet.yml").write_text(textwrap.dedent(PLAN))
    (tmp_path / "inventory.yml").write_text(textwrap.dedent(INVENTORY))
    state = tmp_path / "sim.json"
    sim = RecordingExecutor(state_file=state)
    sim.state.repo = {"openssl": ["3.0.11-1", "3.0.13-1"], "vim": ["9.0", "9.1"]}
    sim.state.security = ["openssl=3.0.13-1"]
    for name in ("web-01", "db-01", "lab-01"):
        sim.add_host(name, {"openssl": "3.0.11-1", "vim": "9.0"})
    sim.add_host("web-02", {"openssl": "3.0.13-1", "vim": "9.0"})
    sim.add_host("gone-01", {"openssl": "3.0.11-1"})
    sim.fail("gone-01", "facts", "unreachable")
    sim.save()
    for key, value in {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pg.db'}",
        "PLANS_DIR": str(tmp_path / "plans"),
        "INVENTORY": str(tmp_path / "inventory.yml"),
        "OPERATORS": OPERATOR,
        "EXECUTOR": "recording",
        "RECORDING_STATE_FILE": str(state),
        "ADVISORIES_OSV_DIR": str(FEED / "osv"),
        "ADVISORIES_KEV_FILE": str(FEED / "kev.json"),
    }.items():
        monkeypatch.setenv(f"PATCHGATE_{key}", value)
    monkeypatch.chdir(tmp_path)
    assert main(["db", "upgrade"]) == 0
    return tmp_path


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as servers:
        yield servers


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _rows(site: Path, query: sa.Select) -> list:  # type: ignore[type-arg]
    async def fetch() -> list:  # type: ignore[type-arg]
        db = create_database(f"sqlite:///{site / 'pg.db'}")
        try:
            async with read_only(db) as session:
                return list(await session.scalars(query))
        finally:
            await db.dispose()

    return asyncio.run(fetch())


def test_inventory_show_lists_the_hosts_a_selector_takes(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inventory", "show", "--json", "group:web and not host:web-02")
    assert code == 0 and [h["name"] for h in json.loads(out)["hosts"]] == ["web-01"]
    code, _, err = run(capsys, "inventory", "show", "group:web and")
    assert code == 1 and "column 14" in err


def test_refresh_records_facts_and_reports_an_unreachable_host_as_a_gap(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inventory", "refresh", "--json")
    data = json.loads(out)
    assert code == 3
    assert data["refreshed"] == ["db-01", "lab-01", "web-01", "web-02"]
    assert [g["host"] for g in data["coverage_gaps"]] == ["gone-01"]
    assert "unreachable" in data["coverage_gaps"][0]["why"]
    hosts = {h.name: h for h in _rows(site, sa.select(Host))}
    assert hosts["web-01"].os_id == "debian" and hosts["web-01"].facts_at is not None
    assert hosts["gone-01"].reachable is False


def test_assess_ranks_fixes_and_an_emergency_patches_exactly_the_affected_hosts(
    site: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: ExitStack,
) -> None:
    code, out, err = run(capsys, "assess", "--refresh", "--json", "--plan", "fleet")
    assert code == 0, err
    data = json.loads(out)
    assert sorted(data["hosts"]) == ["db-01", "lab-01", "web-01", "web-02"]
    assert data["not_assessed"] == ["gone-01"]
    top = data["top"][0]
    assert (top["host"], top["package"], top["cves"]) == ("web-01", "openssl", ["CVE-2024-0001"])
    assert (
        "known exploited (CVE-2024-0001)" in top["reasons"] and "internet-facing" in top["reasons"]
    )
    # the baseline waits 100000 days after publication and takes security fixes only
    why = {(x["host"], x["package"]): x["why"] for x in data["baseline"]["left_out"]}
    assert why[("web-01", "vim")] == "not a security update (security_only)"
    assert why[("web-01", "openssl")].endswith("the baseline waits 100000")

    serve_for_env(monkeypatch, stack, OPERATOR)
    code, out, err = run(capsys, "emergency", "CVE-2024-0001", "--plan", "fleet", "--json")
    assert code == 0, err
    started = json.loads(out)
    assert started["affected"] == ["db-01", "lab-01", "web-01"]
    assert started["packages"] == ["openssl"]
    (rollout,) = _rows(site, sa.select(Rollout))
    assert rollout.emergency
    plan = PatchPlan.model_validate(rollout.plan_snapshot)
    assert [r.name for r in plan.rings] == ["canary", "rest"]  # early skipped
    assert plan.rings[0].gate.approvers is not None
    assert plan.rings[0].gate.approvers.users == ["U0ONCALL1"]
    assert plan.rings[0].gate.timeout == dt.timedelta(minutes=30)
    assert plan.packages.include == ["openssl"] and plan.packages.approve_after_days is None
    hosts = FileInventory([site / "inventory.yml"]).hosts()
    layout = layout_rollout(plan, hosts)
    assert sorted(h for r in layout.rings for h in r.hosts) == ["db-01", "web-01"]
    kinds = [e.kind for e in _rows(site, sa.select(Event))]
    assert "rollout.requested" in kinds


def test_an_emergency_for_a_cve_no_host_has_says_so(
    site: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: ExitStack,
) -> None:
    assert run(capsys, "assess", "--refresh")[0] == 0
    serve_for_env(monkeypatch, stack, OPERATOR)
    code, out, _ = run(capsys, "emergency", "CVE-2099-0001", "--plan", "fleet")
    assert code == 0 and "No host is affected by CVE-2099-0001" in out


def test_an_emergency_by_a_non_operator_is_refused(
    site: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: ExitStack,
) -> None:
    assert run(capsys, "assess", "--refresh")[0] == 0
    serve_for_env(monkeypatch, stack, "U0SOMEONE")
    monkeypatch.setenv("PATCHGATE_OPERATORS", "U0SOMEONE")  # the CLI's claim: not the server's
    code, _, err = run(capsys, "emergency", "CVE-2024-0001", "--plan", "fleet")
    assert code == 1 and "not an operator" in err
    assert _rows(site, sa.select(Rollout)) == []
    refused = _rows(site, sa.select(Event).where(Event.kind == "request.refused"))
    assert [e.actor for e in refused] == ["U0SOMEONE"]


def _baseline_lines(out: str) -> set[str]:
    return {line for line in out.splitlines() if line.startswith(("Baseline", "  + ", "  - "))}


def test_the_dry_run_lists_what_the_baseline_selects_and_leaves_out_as_assess_does(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "rollout", "start", "fleet", "--dry-run")
    assert code == 0
    # nothing assessed yet, and the plan's baseline waits on publication dates
    assert "The rollout would fail at assessment" in out
    assert "approve_after_days need advisory data" in out

    assert run(capsys, "assess", "--refresh")[0] == 0
    code, out, err = run(capsys, "rollout", "start", "fleet", "--dry-run", "--json")
    assert code == 0, err
    baseline = json.loads(out)["baseline"]
    assert baseline["not_assessed"] == ["gone-01"]
    why = {(x["host"], x["package"]): x["why"] for x in baseline["left_out"]}
    assert why[("web-01", "vim")] == "not a security update (security_only)"
    assert why[("db-01", "openssl")].endswith("the baseline waits 100000")
    assert baseline["selected"] == []

    code, dry, _ = run(capsys, "rollout", "start", "fleet", "--dry-run")
    code2, assessed, _ = run(capsys, "assess", "--plan", "fleet")
    assert code == code2 == 0
    assert _baseline_lines(dry) == _baseline_lines(assessed)
    assert "  - web-01 openssl -> 3.0.13-1: published" in dry
    assert "  ! gone-01: not assessed" in dry
    assert "1 host(s) without a fresh assessment take their platform's set" in dry
    assert _rows(site, sa.select(Rollout)) == []  # a dry run writes nothing


def test_assess_with_an_unknown_plan_asks_no_host(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "assess", "--refresh", "--plan", "nope")
    assert code == 1 and "no plan named 'nope'" in err
    assert _rows(site, sa.select(Host)) == []


def test_an_emergency_on_stale_assessments_says_so(
    site: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stack: ExitStack,
) -> None:
    clock = site / "clock"
    clock.write_text("2026-03-01T08:00:00+00:00")
    monkeypatch.setenv("PATCHGATE_TEST_CLOCK_FILE", str(clock))
    assert run(capsys, "assess", "--refresh")[0] == 0
    clock.write_text("2026-03-03T08:00:00+00:00")  # 48 h later; facts max age is 24 h
    serve_for_env(monkeypatch, stack, OPERATOR, now=dt.datetime(2026, 3, 3, 8, tzinfo=dt.UTC))

    code, out, _ = run(capsys, "emergency", "CVE-2099-0001", "--plan", "fleet")
    assert code == 0 and "No host is affected by CVE-2099-0001" in out
    assert "Note: 4 host(s) were last assessed more than 24 h ago" in out
    code, out, err = run(capsys, "emergency", "CVE-2024-0001", "--plan", "fleet", "--json")
    assert code == 0, err
    assert json.loads(out)["stale_assessments"] == ["db-01", "lab-01", "web-01", "web-02"]
