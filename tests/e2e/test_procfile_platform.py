"""The Procfile's processes run on a platform that gives only PORT and DATABASE_URL.

Heroku and its imitators set ``PORT`` and ``DATABASE_URL`` (often spelled ``postgres://``)
and run the Procfile's lines as they are. The test reads the Procfile, runs its
``release`` line and then its ``web`` line with no ``PATCHGATE_`` variable but the audit
key (serve refuses PostgreSQL without one), on a real PostgreSQL database, and checks
that the migrations landed in that database and that ``serve`` answers on that port.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.dbutil import audit_key_env, fresh_database_url
from tests.e2e.harness import REPO, free_port, wait_for

PROCFILE = REPO / "Procfile"


def procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def platform_env(tmp: Path, *, port: int, database_url: str) -> dict[str, str]:
    """What the platform gives: PORT, DATABASE_URL, and `patchgate` on the PATH."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "patchgate"  # the console script, run from this checkout
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m bot.cli.main "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        {
            "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(REPO),
            "PORT": str(port),
            "DATABASE_URL": database_url,
            # the config var the operator sets: serve refuses PostgreSQL without a key
            **audit_key_env(database_url),
        }
    )
    return env


def test_release_and_web_use_the_platforms_database_url_and_port(tmp_path: Path) -> None:
    processes = procfile()
    assert {"release", "web"} <= processes.keys(), processes
    with fresh_database_url("postgresql", tmp_path) as url:
        heroku_url = url.replace("postgresql://", "postgres://", 1)  # as Heroku spells it
        port = free_port()
        env = platform_env(tmp_path, port=port, database_url=heroku_url)

        release = subprocess.run(
            processes["release"],
            shell=True,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert release.returncode == 0, release.stderr
        assert not list(tmp_path.glob("*.db")), "release migrated a local SQLite file"
        engine = sa.create_engine(sa.engine.make_url(url).set(drivername="postgresql+psycopg"))
        try:
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                assert version.scalar_one()
                tables = sa.inspect(conn).get_table_names()
            assert "rollouts" in tables
        finally:
            engine.dispose()

        log_path = tmp_path / "web.log"
        with log_path.open("wb") as log:
            web = subprocess.Popen(
                processes["web"],
                shell=True,
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the shell and serve: one process group to stop
            )
        try:

            def answered() -> bool:
                if web.poll() is not None:
                    raise AssertionError(
                        f"web exited with {web.returncode}\n{log_path.read_text()}"
                    )
                import urllib.error
                import urllib.request

                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3):
                        return True
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    return False

            wait_for(f"web to answer on PORT {port}", answered, timeout=60)
        finally:
            if web.poll() is None:
                os.killpg(web.pid, 15)
                web.wait(timeout=60)
        assert not list(tmp_path.glob("*.db")), "serve opened a local SQLite file"
