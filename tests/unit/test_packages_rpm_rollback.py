"""The one rollback script of the rpm drivers (dnf/yum and zypper), run for real by
/bin/sh with stub ``dnf``/``zypper`` programs that record their arguments: kept rpms are
preferred over the repository, absent packages are removed, and dnf tries the recorded
transaction's ``history undo`` first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from integrations.packages import rpm
from integrations.packages.base import Command
from integrations.packages.dnf import DnfDriver
from integrations.packages.zypper import ZypperDriver

STUB = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
case "$*" in *"history undo"*) exit "${UNDO_EXIT:-0}" ;; esac
exit 0
"""


def _run(command: Command, tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("dnf", "zypper"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        command.argv,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode, log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def material(tmp_path: Path) -> Path:
    kept = tmp_path / "material"
    kept.mkdir()
    (kept / "openssl-libs-3.0.7-24.el9.x86_64.rpm").write_bytes(b"rpm")
    return kept


SNAPSHOT = {"openssl-libs": "1:3.0.7-24.el9", "curl": "7.76.1-26.el9", "libnew": None}


def test_dnf_downgrades_to_the_kept_rpm_or_the_repository_and_removes_the_new(
    tmp_path: Path, material: Path
) -> None:
    code, calls = _run(DnfDriver().rollback(SNAPSHOT, material_dir=str(material)), tmp_path)
    assert code == 0
    assert calls == [
        f"-y downgrade curl-7.76.1-26.el9 {material}/openssl-libs-3.0.7-24.el9.x86_64.rpm",
        "-y remove libnew",
    ]


def test_dnf_undoes_the_transaction_and_falls_back_when_undo_fails(
    tmp_path: Path, material: Path
) -> None:
    cmd = DnfDriver().rollback(SNAPSHOT, material_dir=str(material), transaction="42")
    assert _run(cmd, tmp_path) == (0, ["-y history undo 42"])
    code, calls = _run(cmd, tmp_path, UNDO_EXIT="1")
    assert code == 0 and calls[0] == "-y history undo 42" and calls[1].startswith("-y downgrade")


def test_zypper_installs_old_packages_and_removes_the_new_in_one_transaction(
    tmp_path: Path, material: Path
) -> None:
    code, calls = _run(ZypperDriver().rollback(SNAPSHOT, material_dir=str(material)), tmp_path)
    assert code == 0
    assert calls == [
        "--non-interactive --no-color install --oldpackage --force-resolution "
        "--allow-unsigned-rpm -- "
        f"curl=7.76.1-26.el9 {material}/openssl-libs-3.0.7-24.el9.x86_64.rpm -libnew"
    ]


def test_both_drivers_use_the_one_shared_resolution() -> None:
    dnf = DnfDriver().rollback(SNAPSHOT, material_dir="/m")
    zyp = ZypperDriver().rollback(SNAPSHOT, material_dir="/m")
    assert rpm._ROLLBACK_RESOLVE in dnf.argv[2] and rpm._ROLLBACK_RESOLVE in zyp.argv[2]
    with pytest.raises(ValueError, match="separator"):
        rpm.rollback_command(SNAPSHOT, material_dir="/m", sep=";", setup="", run="")


def test_names_or_versions_with_blanks_or_globs_never_reach_the_script() -> None:
    from workflows.errors import InputError

    with pytest.raises(InputError):
        DnfDriver().rollback({"a b": "1-1"}, material_dir="/m")
    with pytest.raises(InputError):
        ZypperDriver().rollback({"curl": "7.7*"}, material_dir="/m")
