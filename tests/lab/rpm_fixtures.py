"""pytest fixtures for rpm lab hosts: per kind ("dnf", "zypper") a session-scoped image,
rpm-md repository and template disk (a seed host with lab-base, demo-app 1.0 and
demo-kernel 1.0 installed by the real package manager from the lab repository)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.fixtures import Lab, require_lab
from tests.lab.hosts import ssh_port
from tests.lab.rpm_hosts import RpmLabHost
from tests.lab.rpm_image import build_image
from tests.lab.rpm_repo import build_demo_rpm_repo

RPM_TOOLS = ("rpmbuild", "createrepo_c", "modifyrepo_c")
SEED = {
    "dnf": "dnf -y -q install lab-base-1.0 demo-app-1.0 demo-kernel-1.0 >/dev/null",
    "zypper": "zypper -n -q --gpg-auto-import-keys refresh && zypper -n -q install "
    "lab-base=1.0 demo-app=1.0 demo-kernel=1.0 >/dev/null",
}
# Logs and histories the template starts without (each host's are its own).
FRESH = ("var/log/dnf.log", "var/log/dnf.rpm.log", "var/log/zypp/history")


def require_rpm_lab() -> None:
    require_lab()
    missing = [t for t in RPM_TOOLS if shutil.which(t) is None]
    if missing:
        import os

        reason = f"lab: the rpm lab needs {', '.join(missing)} (apt-get install rpm createrepo-c)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class RpmLab(Lab):
    kind: str = "dnf"

    def host(self, name: str, index: int) -> RpmLabHost:
        return RpmLabHost(
            name=name,
            index=index,
            image=self.image,
            state_dir=self.root / "hosts" / name,
            repo_url=self.repo.url,
            client_public_key=(self.client_key.with_suffix(".pub")).read_text().strip(),
            port=ssh_port(),
            template=self.template,
            kind=self.kind,
        )


def make_rpm_lab(kind: str, root: Path) -> Iterator[RpmLab]:
    require_rpm_lab()
    image = build_image(kind)
    key = root / "client_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    repo, rpms = build_demo_rpm_repo(root)
    repo.serve()
    seed = RpmLabHost(
        name=f"lab-{kind}-seed",
        index=201 if kind == "dnf" else 202,
        image=image,
        state_dir=root / "seed",
        repo_url=repo.url,
        client_public_key=key.with_suffix(".pub").read_text().strip(),
        port=ssh_port(),
        kind=kind,
    )
    template = root / "template"
    try:
        repo.only([rpms["lab-base=1.0"], rpms["demo-app=1.0"], rpms["demo-kernel=1.0"]])
        seed.prepare()
        seed.start()
        seed.sh(SEED[kind], timeout=180)
        seed.stop()
        subprocess.run(["cp", "-a", str(root / "seed" / "upper"), str(template)], check=True)
        for rel in ("etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
                    "lab/boot_id", *FRESH):  # fmt: skip
            (template / rel).unlink(missing_ok=True)
        yield RpmLab(image, root, repo, rpms, key, template, kind=kind)
    finally:
        seed.stop()
        repo.stop()


@pytest.fixture(scope="session")
def dnf_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpmLab]:
    yield from make_rpm_lab("dnf", tmp_path_factory.mktemp("dnf-lab"))


@pytest.fixture(scope="session")
def zypper_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpmLab]:
    yield from make_rpm_lab("zypper", tmp_path_factory.mktemp("zypper-lab"))
