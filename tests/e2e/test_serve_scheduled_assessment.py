"""A real ``patchgate serve`` keeps assessments fresh on its own: with
PATCHGATE_ASSESS_INTERVAL set, the leader gathers facts and upgradable packages from the
fleet and stores assessments without anyone running ``assess --refresh``; a host that
does not answer is recorded unreachable (a coverage gap) and logged as one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from integrations.inventory import FileInventory
from integrations.testing.executor import RecordingExecutor
from tests.dbutil import BACKENDS, fresh_database_url
from tests.e2e.harness import EXAMPLE_INVENTORY, ServeProcess, base_env, migrate, wait_for
from workflows.db import normalise_database_url
from workflows.models import Assessment, Host, HostAssessment

DOWN = "db-01"


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def test_serve_assesses_the_fleet_on_its_schedule_and_records_unreachable_hosts_as_gaps(
    database_url: str, tmp_path: Path
) -> None:
    migrate(database_url, tmp_path)
    state = tmp_path / "hosts.json"
    RecordingExecutor.demo(state_file=state).fail(DOWN, "facts", "unreachable")
    fleet = {h.name for h in FileInventory([EXAMPLE_INVENTORY]).hosts()}
    env = base_env(
        database_url,
        PATCHGATE_ASSESS_INTERVAL="2",
        PATCHGATE_RECORDING_STATE_FILE=str(state),
    )
    engine = sa.create_engine(normalise_database_url(database_url).sync_url)
    try:

        def assessed() -> set[str] | None:
            with engine.connect() as conn:
                hosts = set(conn.scalars(sa.select(HostAssessment.host).distinct()))
            return hosts if hosts else None

        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(Assessment)) == 0
        with ServeProcess(env, cwd=tmp_path) as serve:
            serve.wait_ready()
            hosts = wait_for("a scheduled assessment", assessed, timeout=60)
            wait_for("the gap to be logged", lambda: "coverage gap" in serve.log(), timeout=30)
            log = serve.log()
        assert hosts == fleet - {DOWN}
        with engine.connect() as conn:
            down = conn.execute(
                sa.select(Host.reachable, Host.last_error).where(Host.name == DOWN)
            ).one()
            stored = set(conn.scalars(sa.select(Assessment.host).distinct()))
        assert down.reachable is False and down.last_error
        assert stored == fleet - {DOWN}
        assert f"1 coverage gap(s): {DOWN} (unreachable" in log, log
    finally:
        engine.dispose()
