"""Leadership between real ``patchgate serve`` processes on one database."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from tests.dbutil import fresh_database_url
from tests.e2e.harness import ServeProcess, base_env, metric, migrate, wait_for

TAKEOVER_BOUND = 15.0  # PATCHGATE_LEADER_TAKEOVER=3 in base_env, plus process slack


def test_postgres_has_one_leader_and_a_standby_takes_over_with_a_higher_epoch_after_kill_9(
    tmp_path: Path,
) -> None:
    with fresh_database_url("postgresql", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(url, PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"))
        with (
            ServeProcess(env, cwd=tmp_path, name="a") as a,
            ServeProcess(env, cwd=tmp_path, name="b") as b,
        ):
            a.wait_ready()
            b.wait_ready()

            def the_leader() -> tuple[ServeProcess, ServeProcess, dict[str, object]] | None:
                ha, hb = a.healthz(), b.healthz()
                if ha and ha["leader"]:
                    return a, b, ha
                if hb and hb["leader"]:
                    return b, a, hb
                return None

            leader, standby, health = wait_for("a leader", the_leader, timeout=TAKEOVER_BOUND)
            # Several heartbeats later, still exactly one leader.
            time.sleep(2.5)
            assert leader.healthz() == {**health, "leader": True}
            standby_health = standby.healthz()
            assert standby_health is not None and standby_health["leader"] is False
            assert metric(standby.metrics(), "patchgate_leader") == 0
            assert metric(leader.metrics(), "patchgate_leader") == 1
            old_epoch = health["epoch"]
            assert isinstance(old_epoch, int)

            leader.kill()  # SIGKILL: no clean release; the session's lock goes with it
            started = time.monotonic()
            new = standby.wait_leader(timeout=TAKEOVER_BOUND)
            took = time.monotonic() - started
            assert new["epoch"] > old_epoch, new
            assert took < TAKEOVER_BOUND
            assert f"leader acquired with epoch {new['epoch']}" in standby.log()
            assert standby.terminate(timeout=45) == 0


def test_a_second_serve_on_one_sqlite_file_does_not_lead_and_healthz_says_why(
    tmp_path: Path,
) -> None:
    with fresh_database_url("sqlite", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(url, PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"))
        dbfile = url.removeprefix("sqlite:///")
        why = (
            f"another patchgate serve holds the leader lock on {dbfile}; SQLite supports one leader"
        )
        with ServeProcess(env, cwd=tmp_path, name="first") as first:
            first.wait_leader(timeout=45)
            with ServeProcess(env, cwd=tmp_path, name="second") as second:
                second.wait_ready()

                def refused() -> dict[str, object] | None:
                    health = second.healthz()
                    return health if health and health.get("standby") == why else None

                health = wait_for("the second serve to refuse", refused, timeout=10)
                assert health["leader"] is False
                assert health["status"] == "ok"  # it still serves /healthz
                assert why in second.log()
                first_health = first.healthz()
                assert first_health is not None and first_health["leader"] is True

                # When the first one stops cleanly, the second one takes the lock over.
                assert first.terminate(timeout=45) == 0
                taken = second.wait_leader(timeout=TAKEOVER_BOUND)
                assert taken["epoch"] == 2
                assert second.terminate(timeout=45) == 0


def test_serve_steps_down_when_its_lock_connection_dies_and_leads_again_with_a_new_epoch(
    tmp_path: Path,
) -> None:
    with fresh_database_url("postgresql", tmp_path) as url:
        migrate(url, tmp_path)
        env = base_env(url, PATCHGATE_RECORDING_STATE_FILE=str(tmp_path / "fleet.json"))
        with ServeProcess(env, cwd=tmp_path) as serve:
            assert serve.wait_leader(timeout=45)["epoch"] == 1
            killed = terminate_leader_connections(url)
            assert killed == 1

            def re_elected() -> dict[str, object] | None:
                health = serve.healthz()
                return health if health and health["epoch"] == 2 else None

            wait_for("serve to lead again", re_elected, timeout=TAKEOVER_BOUND)
            log = serve.log()
            assert "stepping down (epoch 1): leadership lost" in log
            assert "leader acquired with epoch 2" in log
            assert serve.terminate(timeout=45) == 0


def terminate_leader_connections(url: str) -> int:
    engine = sa.create_engine(sa.engine.make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'patchgate-leader' "
                        "AND datname = current_database()"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()
