"""The lab's rpm image: the apt image's recipe (tests/lab/image.py) plus Debian's own
builds of rpm 4.18 and either dnf 4.14 (with dnf-plugins-core for ``needs-restarting``
and ``download``) or zypper/libzypp: one image per kind ("dnf", "zypper"), since Debian's
dnf-plugins-core Breaks zypper. Each host's ``/etc/os-release`` and repository
definition are written into its upper dir (tests/lab/rpm_hosts.py).

In the image:
- one rpm database for every tool and every user: ``%_dbpath /var/lib/rpm`` (Debian's
  rpm defaults to ``~/.rpmdb``, so ``rpm -q`` as the login user would read an empty one);
- apt-get and apt moved out of PATH (PatchGate's facts take the first of apt-get, dnf,
  yum, zypper it finds); dpkg stays, it carries the base system;
- dnf configured for the lab: ``releasever``, no gpg check, no weak deps, its cache
  kept between runs;
- dnf-plugins-core's ``local`` plugin off (Debian enables it; its empty ``_dnf_local``
  repository makes every dnf command complain);
- ``needs-restarting -r`` told that demo-kernel is a core package (its own config dir).

Cached like the apt image, under ``KIND-rev-A.N`` (A: the apt recipe's revision, N:
RPM_RECIPE_REV).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from tests.lab import image as base

RPM_RECIPE_REV = "2"
KINDS = {
    "dnf": (*base.PACKAGES, "rpm", "dnf", "python3-dnf", "dnf-plugins-core"),
    "zypper": (*base.PACKAGES, "rpm", "zypper"),
}
HIDDEN = "usr/lib/patchgate-lab/hidden"

DNF_CONF = """[main]
gpgcheck=0
installonly_limit=3
clean_requirements_on_remove=True
best=False
skip_if_unavailable=False
install_weak_deps=False
keepcache=True
releasever=9
"""


def image_dir(kind: str) -> Path:
    return base.CACHE_ROOT / f"{kind}-rev-{base.RECIPE_REV}.{RPM_RECIPE_REV}" / "rootfs"


def _customize(root: Path) -> None:
    base._customize(root)

    def write(rel: str, text: str, mode: int = 0o644) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text(text)
        path.chmod(mode)

    write("etc/rpm/macros", "%_dbpath /var/lib/rpm\n")
    (root / "var/lib/rpm").mkdir(parents=True, exist_ok=True)
    subprocess.run(["chroot", str(root), "rpm", "--initdb"], check=True, timeout=60)
    write("etc/dnf/dnf.conf", DNF_CONF)
    (root / "etc/yum.repos.d").mkdir(parents=True, exist_ok=True)
    write("etc/dnf/vars/releasever", "9\n")
    write("etc/dnf/plugins/needs-restarting.d/demo-kernel.conf", "demo-kernel\n")
    if (root / "etc/dnf/plugins/local.conf").exists():  # Debian enables it: repo _dnf_local
        write("etc/dnf/plugins/local.conf", "[main]\nenabled=0\n")
    hidden = root / HIDDEN
    hidden.mkdir(parents=True, exist_ok=True)
    for rel in ("usr/bin/apt-get", "usr/bin/apt"):
        if (root / rel).exists():
            (root / rel).rename(hidden / Path(rel).name)


def build_image(kind: str) -> Path:
    """Return the cached image of this kind, building it first if needed."""
    final = image_dir(kind)
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
        excludes.write_text(base.DPKG_EXCLUDES)
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--format=directory",
                f"--include={','.join(KINDS[kind])}",
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                f'--setup-hook=mkdir -p "$1/etc/dpkg/dpkg.cfg.d" && cp {excludes} '
                '"$1/etc/dpkg/dpkg.cfg.d/99-lab-excludes"',
                "--skip=cleanup/apt/lists",
                "bookworm",
                str(work),
                base._sources(),
            ],
            check=True,
            timeout=base.BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        _customize(work)
        shutil.rmtree(work / "var/lib/apt/lists", ignore_errors=True)
        (work / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (work / ".complete").write_text(f"{base.RECIPE_REV}.{RPM_RECIPE_REV}\n")
        work.rename(final)
    return final
