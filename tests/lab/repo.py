"""The lab's apt repository: tiny demo packages built with dpkg-deb, indexed with
apt-ftparchive (old versions stay in the index, rollback needs them), served by busybox
httpd on its own loopback address.

| package          | behaviour                                                      |
|------------------|----------------------------------------------------------------|
| demo-app 1.0/1.1 | healthy: GET /cgi-bin/health answers 200 with the version      |
| demo-app 1.2     | installs fine, health answers 503                              |
| demo-app 1.3     | postinst exits 1: apt-get exits 100, package half-configured   |
| demo-kernel 1.1  | the upgrade writes /run/reboot-required(.pkgs)                 |
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.lab.net import lab_octet, wait_port

REPO_PORT = 8000  # the first choice; a busy one is skipped


def _free_port(address: str) -> int:
    for port in (REPO_PORT, 0):
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no free port on {address}")


def repo_address() -> str:
    """The repository's address in this session's lab slot (tests/lab/net.py)."""
    return f"127.{lab_octet()}.31.1"


INIT_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          demo-app
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: demo-app health endpoint
### END INIT INFO
LISTEN=127.0.0.1:8080
[ -r /etc/default/demo-app ] && . /etc/default/demo-app
PIDFILE=/run/demo-app.pid
case "$1" in
  start)
    if [ -e $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; then exit 0; fi
    busybox httpd -f -p "$LISTEN" -h /usr/share/demo-app/www </dev/null >/dev/null 2>&1 &
    echo $! > $PIDFILE
    ;;
  stop)
    [ -e $PIDFILE ] && kill "$(cat $PIDFILE)" 2>/dev/null
    rm -f $PIDFILE
    ;;
  restart|force-reload)
    "$0" stop; "$0" start
    ;;
  status)
    [ -e $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null
    ;;
esac
exit 0
"""

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    update-rc.d demo-app defaults >/dev/null
    invoke-rc.d demo-app start
fi
"""

PRERM = """#!/bin/sh
set -e
invoke-rc.d demo-app stop || true
"""

POSTRM = """#!/bin/sh
set -e
if [ "$1" = purge ]; then update-rc.d demo-app remove >/dev/null; fi
"""

KERNEL_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -n "$2" ]; then
    echo '*** System restart required ***' > /run/reboot-required
    echo demo-kernel >> /run/reboot-required.pkgs
fi
"""


def _health(version: str, status: str) -> str:
    return (
        "#!/bin/sh\n"
        f"printf 'HTTP/1.0 {status}\\r\\nContent-Type: text/plain\\r\\n\\r\\n"
        f"demo-app {version} {status}\\n'\n"
    )


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_deb(
    out: Path, name: str, version: str, files: dict[str, tuple[str, int]], scripts: dict[str, str]
) -> Path:
    root = out / "src" / f"{name}_{version}"
    shutil.rmtree(root, ignore_errors=True)
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: PatchGate lab <lab@example.invalid>\nSection: misc\nPriority: optional\n"
        f"Description: PatchGate lab package {name} {version}\n"
    )
    _write(root / "DEBIAN/control", control)
    for script, text in scripts.items():
        _write(root / "DEBIAN" / script, text, 0o755)
    for rel, (text, mode) in files.items():
        _write(root / rel, text, mode)
    deb = out / "pool" / f"{name}_{version}_all.deb"
    deb.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return deb


def demo_app(out: Path, version: str) -> Path:
    status = "503 Service Unavailable" if version == "1.2" else "200 OK"
    postinst = "#!/bin/sh\necho 'demo-app: configuration failed' >&2\nexit 1\n"
    return build_deb(
        out,
        "demo-app",
        version,
        {
            "etc/init.d/demo-app": (INIT_SCRIPT, 0o755),
            "usr/share/demo-app/www/cgi-bin/health": (_health(version, status), 0o755),
            "usr/share/demo-app/www/index.html": (f"demo-app {version}\n", 0o644),
        },
        {
            "postinst": postinst if version == "1.3" else POSTINST,
            "prerm": PRERM,
            "postrm": POSTRM,
        },
    )


def demo_kernel(out: Path, version: str) -> Path:
    return build_deb(
        out,
        "demo-kernel",
        version,
        {"usr/share/demo-kernel/version": (version + "\n", 0o644)},
        {"postinst": KERNEL_POSTINST},
    )


class Repo:
    """A flat apt repository directory (``deb [trusted=yes] http://addr:port/ ./``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pool = root / "pool"
        self.pool.mkdir(parents=True, exist_ok=True)
        self._server: subprocess.Popen[bytes] | None = None
        # Its own port: two labs in one test process (each conftest importing the
        # session fixture makes its own) must not share a repository.
        self.port = _free_port(repo_address())

    @property
    def url(self) -> str:
        return f"http://{repo_address()}:{self.port}/"

    def publish(self, debs: Iterable[Path] = ()) -> None:
        for deb in debs:
            if deb.parent != self.pool:
                shutil.copy2(deb, self.pool / deb.name)
        self.index()

    def only(self, debs: Iterable[Path]) -> None:
        """Publish exactly these packages (a vendor release: old versions may go)."""
        for old in self.pool.glob("*.deb"):
            old.unlink()
        self.publish(debs)

    def withdraw(self, name: str, version: str) -> None:
        (self.pool / f"{name}_{version}_all.deb").unlink(missing_ok=True)
        self.index()

    def index(self) -> None:
        packages = subprocess.run(
            ["apt-ftparchive", "packages", "pool"],
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        (self.root / "Packages").write_bytes(packages)
        release = subprocess.run(
            ["apt-ftparchive", "release", "."],
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        (self.root / "Release").write_bytes(release)

    def serve(self) -> None:
        if self._server is not None:
            return
        self._server = subprocess.Popen(
            ["busybox", "httpd", "-f", "-p", f"{repo_address()}:{self.port}", "-h", str(self.root)],
            stdin=subprocess.DEVNULL,
        )
        wait_port(repo_address(), self.port, timeout=10)
        if self._server.poll() is not None:
            raise RuntimeError(f"the lab repository could not listen on {self.url}")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)


def build_demo_repo(root: Path) -> tuple[Repo, dict[str, Path]]:
    """Every demo .deb built into ``root/debs``; the repository starts with 1.0 and 1.1."""
    debs: dict[str, Path] = {}
    out = root / "debs"
    for version in ("1.0", "1.1", "1.2", "1.3"):
        debs[f"demo-app={version}"] = demo_app(out, version)
    for version in ("1.0", "1.1"):
        debs[f"demo-kernel={version}"] = demo_kernel(out, version)
    repo = Repo(root / "repo")
    repo.publish([debs["demo-app=1.0"], debs["demo-app=1.1"], debs["demo-kernel=1.0"]])
    return repo, debs
