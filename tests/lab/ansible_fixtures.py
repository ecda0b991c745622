"""A session-scoped lab for the Ansible backend: the apt lab (tests/lab/fixtures.py) on
the image with python3 and python3-apt (tests/lab/ansible_image.py), which Ansible's
modules need on the managed host. Same template disk recipe: demo-app 1.0 and
demo-kernel 1.0 installed from the lab repository."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.lab.ansible_image import build_image
from tests.lab.fixtures import Lab, require_lab
from tests.lab.hosts import LabHost, ssh_port
from tests.lab.repo import build_demo_repo


@pytest.fixture(scope="session")
def ansible_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    image = build_image()
    root = tmp_path_factory.mktemp("ansible-lab")
    key = root / "client_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    repo, debs = build_demo_repo(root)
    repo.serve()
    template = root / "template"
    seed = LabHost(
        name="lab-ansible-seed",
        index=203,
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
