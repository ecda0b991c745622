"""A throwaway PostgreSQL cluster a test creates, starts, stops and restarts itself.

Never the shared server on 5432: ``initdb`` into a new temporary directory, ``pg_ctl``
on a free port on 127.0.0.1 (trust authentication, fsync off), removed at the end. The
server binaries come from ``/usr/lib/postgresql/*/bin`` (newest version) or ``$PATH``;
:func:`server_binaries` returns None when they are missing, so a test can skip saying so.
``initdb`` refuses to run as root: as root every command runs as the ``postgres`` user
(``runuser``), which then owns the directory.

    with PgCluster.create() as cluster:
        url = cluster.url  # postgresql://postgres@127.0.0.1:PORT/postgres
        cluster.stop()     # connections are refused
        cluster.start()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

RUN_AS = "postgres"


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def missing_reason() -> str | None:
    """Why no cluster can be made here, or None when one can."""
    if server_binaries() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found "
            "in /usr/lib/postgresql/*/bin or PATH"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing (initdb refuses root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv[:1])} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}"
            )

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[PgCluster]:
        reason = missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        bindir = server_binaries()
        assert bindir is not None
        root = Path(tempfile.mkdtemp(prefix="patchgate-pgcluster-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(bindir, root, free_port())
        try:
            cluster._run(
                "initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            cluster.start()
            yield cluster
        finally:
            with contextlib.suppress(Exception):
                cluster.stop(mode="immediate")
            shutil.rmtree(root, ignore_errors=True)

    def start(self) -> None:
        """Start (again) on the same port; returns once it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            # fsync off: the machine does not crash, only the server. synchronous_commit
            # stays on: with it off an ``immediate`` stop loses commits already reported.
            "-c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, *, mode: str = "fast") -> None:
        """Stop: ``fast`` ends every session (a clean shutdown), ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()
