"""pytest fixtures for the lab: session-scoped image, repository and template disk;
module-scoped hosts. Every finalizer runs even when a test fails; a host that does not
boot in time fails the test instead of hanging it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.hosts import LabHost, ssh_port
from tests.lab.image import build_image
from tests.lab.repo import Repo, build_demo_repo

TOOLS = ("unshare", "nsenter", "mmdebstrap", "dpkg-deb", "apt-ftparchive", "busybox", "ssh-keygen")


def lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (mount and PID namespaces)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the lab needs {', '.join(missing)} (apt-get install mmdebstrap apt-utils busybox)"
    return None


def require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"lab: {reason}")
    pytest.skip(f"lab: {reason}")


@dataclass
class Lab:
    image: Path
    root: Path
    repo: Repo
    debs: dict[str, Path]
    client_key: Path
    template: Path

    def host(self, name: str, index: int) -> LabHost:
        host = LabHost(
            name=name,
            index=index,
            image=self.image,
            state_dir=self.root / "hosts" / name,
            repo_url=self.repo.url,
            client_public_key=(self.client_key.with_suffix(".pub")).read_text().strip(),
            port=ssh_port(),
            template=self.template,
        )
        return host

    def publish_only(self, *specs: str) -> None:
        self.repo.only(self.debs[s] for s in specs)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    image = build_image()
    root = tmp_path_factory.mktemp("lab")
    key = root / "client_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    key.with_suffix(".pub").write_text((root / "client_ed25519.pub").read_text())
    repo, debs = build_demo_repo(root)
    repo.serve()
    template = root / "template"
    seed = LabHost(
        name="lab-seed",
        index=200,
        image=image,
        state_dir=root / "seed",
        repo_url=repo.url,
        client_public_key=key.with_suffix(".pub").read_text().strip(),
        port=ssh_port(),
    )
    try:
        repo.only([debs["demo-app=1.0"], debs["demo-kernel=1.0"]])
        seed.prepare()
        seed.start()
        seed.sh(
            "apt-get update -qq -o APT::Update::Error-Mode=any && "
            "apt-get install -y -qq demo-app=1.0 demo-kernel=1.0 >/dev/null",
            timeout=120,
        )
        seed.stop()
        subprocess.run(["cp", "-a", str(root / "seed" / "upper"), str(template)], check=True)
        for rel in ("etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
                    "lab/boot_id", "var/log/dpkg.log"):  # fmt: skip
            (template / rel).unlink(missing_ok=True)
        (template / "var/log/dpkg.log").write_text("")
        yield Lab(image, root, repo, debs, key, template)
    finally:
        seed.stop()
        repo.stop()
