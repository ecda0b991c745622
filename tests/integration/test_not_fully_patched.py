"""Issue 16: a host that ends its run with selected updates still missing (here: held by
a package exception) is reported as not fully patched in the rollout's Slack thread,
`patchgate rollout show` (text and --json) and the evidence's host_runs.csv; the
rollout's reason says so. Run on a database made by the migrations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import sqlalchemy as sa

from tests.enginekit import OPERATORS, REQUESTER, Rig, make_plan
from tests.integration.test_cli_rollout import cli
from workflows import exceptions
from workflows.db import create_database, read_only, unit_of_work
from workflows.gates import Actor
from workflows.models import HostException, OutboxItem
from workflows.reports import Period, ReportRequest, build_bundle

DEV = [{"name": "dev", "hosts": "group:dev", "batch": "100%"}]


async def test_a_host_with_a_held_update_is_reported_not_fully_patched_everywhere(
    tmp_path: Path,
) -> None:
    assert cli(tmp_path, "db", "upgrade").returncode == 0
    db = create_database(f"sqlite:///{tmp_path / 'pg.db'}")
    try:
        rig = Rig(db)
        now = rig.clock.now()
        async with unit_of_work(db) as session:
            granted = await exceptions.grant(
                session,
                actor=Actor(REQUESTER),
                operators=OPERATORS,
                host="dev-02",
                package="openssl",
                owner="U0OWNER1",
                reason="vendor freeze",
                expires_at=now + dt.timedelta(days=3),
                now=now,
                max_days=30,
            )
        assert isinstance(granted, HostException)
        # openssl only: held on dev-02, whose share is then empty (up to date)
        rollout_id = await rig.start(make_plan(rings=DEV, packages={"include": ["openssl"]}))
        await rig.engine().run_until_idle()

        rollout = await rig.rollout(rollout_id)
        assert rollout.state == "succeeded"
        assert rollout.reason == "1 host(s) not fully patched"
        assert rig.executor.installed_on("dev-02")["openssl"] == "3.0.11-1"
        assert rig.executor.apply_count("dev-02") == 0
        assert await rig.host_states(rollout_id) == {"dev-01": "healthy", "dev-02": "up_to_date"}
        async with read_only(db) as session:
            notes = " ".join(
                str(i.payload)
                for i in await session.scalars(
                    sa.select(OutboxItem).where(OutboxItem.rollout_id == rollout_id)
                )
            )
        assert "Not fully patched (1): dev-02: openssl (held by a package exception)" in notes
        bundle = await build_bundle(
            db,
            ReportRequest(Period(now - dt.timedelta(days=1), now + dt.timedelta(days=1))),
            tmp_path / "bundle",
        )
    finally:
        await db.dispose()

    shown = cli(tmp_path, "rollout", "show", str(rollout_id))
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if "dev-02" in x)
    assert "NOT FULLY PATCHED: openssl (held by a package exception)" in line
    data = json.loads(cli(tmp_path, "rollout", "show", str(rollout_id), "--json").stdout)
    hosts = {h["host"]: h for h in data["rings"][0]["hosts"]}
    assert hosts["dev-02"]["not_fully_patched"] == {"openssl": "held by a package exception"}
    assert hosts["dev-01"]["not_fully_patched"] is None
    with zipfile.ZipFile(bundle.path) as archive:
        runs = list(csv.DictReader(io.StringIO(archive.read("host_runs.csv").decode())))
        rollouts = list(csv.DictReader(io.StringIO(archive.read("rollouts.csv").decode())))
    assert (rollouts[0]["healthy"], rollouts[0]["up_to_date"]) == ("1", "1")
    by_host = {r["host"]: r for r in runs}
    assert by_host["dev-02"]["not_fully_patched"] == "openssl (held by a package exception)"
    assert by_host["dev-01"]["not_fully_patched"] == ""
