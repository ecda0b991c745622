"""The lab's one cached root filesystem image, built with mmdebstrap (minbase).

The cache directory is keyed by RECIPE_REV: change the recipe below, bump the revision,
and the next run builds a new image. A file lock keeps two sessions from building the
same image at once; the image appears under its final name only when complete.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

RECIPE_REV = "3"
CACHE_ROOT = Path(os.environ.get("PATCHGATE_LAB_CACHE", "/var/cache/patchgate-lab"))
PACKAGES = (
    "openssh-server",
    "busybox",
    "sudo",
    "procps",
    "apt-utils",
    "init-system-helpers",
)
BUILD_TIMEOUT = 600

# Written into the image by a customize hook (paths relative to the image root).
INIT = r"""#!/bin/sh
# PID 1 of a lab host: starts sshd and the demo service; USR1 "reboots" the host.
start() {
    mkdir -p /run/sshd
    /usr/sbin/sshd
    if [ -x /etc/init.d/demo-app ] && [ -e /etc/rc2.d/S01demo-app ]; then
        /etc/init.d/demo-app start
    fi
}
stop_all() {
    kill -TERM -1 2>/dev/null
    sleep 0.3
    kill -KILL -1 2>/dev/null
}
reboot_host() {
    stop_all
    find /run -mindepth 1 -delete 2>/dev/null
    cat /proc/sys/kernel/random/uuid > /lab/boot_id
    start
}
trap 'stop_all; exit 0' TERM INT
trap 'reboot_host' USR1
start
while :; do
    sleep 1 &
    wait $!
done
"""

REBOOT = """#!/bin/sh
# Lab stand-in for reboot/shutdown -r: PID 1 restarts the host (new boot id).
kill -USR1 1
"""

RUNLEVEL = """#!/bin/sh
echo "N 2"
"""

DPKG_EXCLUDES = """path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/info/*
"""


def image_dir() -> Path:
    return CACHE_ROOT / f"rev-{RECIPE_REV}" / "rootfs"


def _sources() -> str:
    """The machine's own Debian sources (whatever mirror it is configured for)."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.exists() and path.read_text().strip():
            return str(path)
    return "http://deb.debian.org/debian"


def _customize(root: Path) -> None:
    def write(rel: str, text: str, mode: int = 0o644) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(text)
        path.chmod(mode)

    write("sbin/init", INIT, 0o755)
    write("sbin/runlevel", RUNLEVEL, 0o755)
    for name in ("reboot", "shutdown"):
        write(f"sbin/{name}", REBOOT, 0o755)
    write("etc/sudoers.d/patchgate", "patchgate ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    write("etc/apt/sources.list", "")
    write("etc/apt/apt.conf.d/90lab", 'Acquire::Languages "none";\nAPT::Install-Recommends "0";\n')
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "lab").mkdir(exist_ok=True)
    subprocess.run(
        ["chroot", str(root), "useradd", "-m", "-s", "/bin/sh", "-p", "*", "patchgate"],
        check=True,
        timeout=60,
    )


def build_image() -> Path:
    """Return the cached image, building it first if needed (bounded by BUILD_TIMEOUT)."""
    final = image_dir()
    if (final / ".complete").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").exists():
            return final
        work = final.parent / "building"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        excludes = final.parent / "dpkg-excludes"
        excludes.write_text(DPKG_EXCLUDES)
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--format=directory",
                f"--include={','.join(PACKAGES)}",
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                f'--setup-hook=mkdir -p "$1/etc/dpkg/dpkg.cfg.d" && cp {excludes} '
                '"$1/etc/dpkg/dpkg.cfg.d/99-lab-excludes"',
                "--skip=cleanup/apt/lists",
                "bookworm",
                str(work),
                _sources(),
            ],
            check=True,
            timeout=BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        _customize(work)
        shutil.rmtree(work / "var/lib/apt/lists", ignore_errors=True)
        (work / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (work / ".complete").write_text(RECIPE_REV + "\n")
        work.rename(final)
    return final
