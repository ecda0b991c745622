"""`patchgate rollout show` and `inventory show` name Windows devices by family and build
and a pinned KB by number and title (issue 21), as a real process on a database migrated
by `patchgate db upgrade`."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tests.integration.test_cli_rollout import cli
from workflows.models import Host, HostRun, Ring, Rollout

KB = "KB5034441"
TITLE = "2024-01 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems"
PLATFORM = "windows-10.0.22631-x64"
IDENTITY = {"kind": "update", "kb": KB, "catalog_id": "cat-7f3a", "title": TITLE}


def _seed(tmp: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp / 'pg.db'}")
    with Session(engine) as session, session.begin():
        rollout = Rollout(
            plan_name="weekly",
            plan_hash="0" * 64,
            plan_snapshot={},
            state="succeeded",
            requested_by="U0OPERATOR",
            patchset={PLATFORM: {KB: "cat-7f3a"}, "debian-12-amd64": {"openssl": "3.0.13-1"}},
            patchset_updates={PLATFORM: {KB: IDENTITY}},
            patchset_hash="a" * 64,
        )
        session.add(rollout)
        session.flush()
        ring = Ring(rollout_id=rollout.id, position=0, name="prod", state="done")
        session.add(ring)
        session.flush()
        for name, platform in (("win-01", PLATFORM), ("web-01", "debian-12-amd64")):
            session.add(
                HostRun(
                    rollout_id=rollout.id,
                    ring_id=ring.id,
                    host_name=name,
                    batch=0,
                    platform=platform,
                    state="healthy",
                )
            )
        session.add(Host(name="win-01", os_id="windows", os_family="windows", build="22631.3007"))
        session.add(Host(name="web-01", os_id="debian", os_version="12", os_family="linux"))
        rollout_id = rollout.id
    engine.dispose()
    return rollout_id


def test_rollout_show_names_the_kb_by_title_and_the_device_by_family_and_build(
    tmp_path: Path,
) -> None:
    assert cli(tmp_path, "db", "upgrade").returncode == 0  # the migration adds the columns
    rollout_id = _seed(tmp_path)
    shown = cli(tmp_path, "rollout", "show", str(rollout_id))
    assert shown.returncode == 0, shown.stderr
    assert f"    {PLATFORM}: {KB} — {TITLE}" in shown.stdout
    assert "    debian-12-amd64: openssl=3.0.13-1" in shown.stdout  # a package as before
    assert f"{KB}=cat-7f3a" not in shown.stdout
    win = next(line for line in shown.stdout.splitlines() if "win-01" in line)
    assert "[windows build 22631.3007]" in win
    web = next(line for line in shown.stdout.splitlines() if "web-01" in line)
    assert "[" not in web
    data = json.loads(cli(tmp_path, "rollout", "show", str(rollout_id), "--json").stdout)
    assert data["patchset_updates"] == {PLATFORM: {KB: IDENTITY}}
    hosts = {h["host"]: h for h in data["rings"][0]["hosts"]}
    assert hosts["win-01"]["os"] == "windows build 22631.3007" and "os" not in hosts["web-01"]


def test_inventory_show_lists_the_inventorys_family_and_build(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    win-01:\n      patchgate_os_family: Windows\n"
        "      patchgate_os_build: '22631.3007'\n    web-01: {}\n"
    )
    shown = cli(tmp_path, "inventory", "show", PATCHGATE_INVENTORY=str(inventory))
    assert shown.returncode == 0, shown.stderr
    win = next(line for line in shown.stdout.splitlines() if line.startswith("win-01"))
    assert "os=windows/22631.3007" in win
    web = next(line for line in shown.stdout.splitlines() if line.startswith("web-01"))
    assert "os=" not in web
    data = json.loads(
        cli(tmp_path, "inventory", "show", "--json", PATCHGATE_INVENTORY=str(inventory)).stdout
    )
    hosts = {h["name"]: h for h in data["hosts"]}
    assert (hosts["win-01"]["os_family"], hosts["win-01"]["os_build"]) == ("windows", "22631.3007")
    assert hosts["web-01"]["os_family"] is None
