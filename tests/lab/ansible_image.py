"""The lab's apt image for Ansible: the apt image's recipe (tests/lab/image.py) plus
Debian's python3 and python3-apt, which Ansible's modules (``apt``, ``package_facts``,
fact gathering) need on the managed host. The dnf image (tests/lab/rpm_image.py) already
carries python3 with dnf's bindings.

Cached like the apt image, under ``apt-ansible-rev-A.N`` (A: the apt recipe's revision,
N: ANSIBLE_RECIPE_REV).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

from tests.lab import image as base

ANSIBLE_RECIPE_REV = "1"
PACKAGES = (*base.PACKAGES, "python3-minimal", "python3-apt")


def image_dir() -> Path:
    return base.CACHE_ROOT / f"apt-ansible-rev-{base.RECIPE_REV}.{ANSIBLE_RECIPE_REV}" / "rootfs"


def build_image() -> Path:
    """Return the cached image, building it first if needed (bounded)."""
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
        excludes.write_text(base.DPKG_EXCLUDES)
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
                base._sources(),
            ],
            check=True,
            timeout=base.BUILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        base._customize(work)
        shutil.rmtree(work / "var/lib/apt/lists", ignore_errors=True)
        (work / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (work / ".complete").write_text(f"{base.RECIPE_REV}.{ANSIBLE_RECIPE_REV}\n")
        work.rename(final)
    return final
