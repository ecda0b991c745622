"""`patchgate plan ...` run as a real process, the way CI and operators run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from integrations.backends import build_backends

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLANS = sorted((ROOT / "examples" / "plans").glob("*.yml"))


def patchgate(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_accepts_every_example_plan_without_database_or_slack(tmp_path: Path) -> None:
    assert EXAMPLE_PLANS, "the examples must ship plans"
    result = patchgate("plan", "validate", *map(str, EXAMPLE_PLANS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"{ROOT / 'examples/plans/weekly.yml'}: ok (plan weekly, 4 rings)" in result.stdout
    assert len(result.stdout.splitlines()) == len(EXAMPLE_PLANS)
    assert not (tmp_path / "patchgate.db").exists()  # no database was touched


def test_validate_prints_every_located_error_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "broken.yml").write_text(
        textwrap.dedent(
            """\
            name: broken
            schedule:
              cron: "0 2 * * 0"
              timezone: Mars/Olympus
              duration: 4h
            rings:
              - name: dev
                hosts: group:dev
              - name: staging
                hosts: group:staging and (tag:x or)
              - name: prod
                hosts: group:prod
                batch: lots
            """
        )
    )
    result = patchgate("plan", "validate", "plans/broken.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("plans/broken.yml:4 schedule.timezone: unknown time zone")
    assert lines[1].startswith('plans/broken.yml:10 rings[1].hosts: bad selector: unexpected ")"')
    assert (
        lines[2]
        == 'plans/broken.yml:13 rings[2].batch: expected a count or a percentage like "25%"'
    )


def test_validate_reports_good_files_and_still_fails_for_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("name: x\nrings: []\n")
    result = patchgate("plan", "validate", str(EXAMPLE_PLANS[0]), "bad.yml", cwd=tmp_path)
    assert result.returncode == 1
    assert ": ok (plan " in result.stdout
    assert result.stderr.startswith("bad.yml:2 rings: ")


def test_list_shows_the_plans_directory_as_json(tmp_path: Path) -> None:
    result = patchgate(
        "plan", "list", "--json", cwd=tmp_path, PATCHGATE_PLANS_DIR=str(ROOT / "examples/plans")
    )
    assert result.returncode == 0, result.stderr
    plans = {p["name"]: p for p in json.loads(result.stdout)}
    assert plans["weekly"]["rings"] == ["dev", "staging", "canary", "production"]
    assert plans["weekly"]["schedule"]["cron"] == "0 2 * * 0"
    assert len(plans["weekly"]["hash"]) == 64


def test_list_as_text_shows_a_hash_prefix(tmp_path: Path) -> None:
    result = patchgate(
        "plan", "list", cwd=tmp_path, PATCHGATE_PLANS_DIR=str(ROOT / "examples/plans")
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "FILE", "RINGS", "SCHEDULE", "HASH"]
    weekly = next(r for r in rows if r.startswith("weekly "))
    assert "dev > staging > canary > production" in weekly
    assert len(weekly.split()[-1]) == 12


def test_list_refuses_two_files_declaring_the_same_plan(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("name: same\nrings: [{name: r, hosts: all}]\n")
    result = patchgate("plan", "list", cwd=tmp_path, PATCHGATE_PLANS_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "plan name 'same' is already used by" in result.stderr


def test_layout_dry_run_places_the_example_inventory(tmp_path: Path) -> None:
    result = patchgate(
        "plan",
        "layout",
        "weekly",
        "--json",
        "--except",
        "web-05",
        cwd=tmp_path,
        PATCHGATE_PLANS_DIR=str(ROOT / "examples/plans"),
        PATCHGATE_INVENTORY=str(ROOT / "examples/inventory"),
    )
    assert result.returncode == 0, result.stderr
    layout = json.loads(result.stdout)
    sizes = {r["name"]: len(r["hosts"]) + len(r["excepted"]) for r in layout["rings"]}
    assert sizes == {"dev": 2, "staging": 2, "canary": 2, "production": 18}
    assert layout["left_out"] == {}
    production = next(r for r in layout["rings"] if r["name"] == "production")
    assert production["excepted"] == ["web-05"]
    assert "web-05" not in production["hosts"]


def test_validate_refuses_a_backend_patchgate_does_not_have_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "plan.yml").write_text(
        textwrap.dedent(
            """\
            name: weekly
            backends:
              ssh: {}
            rings:
              - name: dev
                hosts: group:dev
              - name: prod
                hosts: group:prod
                backend: chef
            """
        )
    )
    result = patchgate("plan", "validate", "plan.yml", cwd=tmp_path)
    assert result.returncode == 1
    known = ", ".join(sorted(build_backends()))  # ssh and every registered tool backend
    assert f"plan.yml:9 rings[1].backend: unknown backend 'chef' (known: {known})" in result.stderr
