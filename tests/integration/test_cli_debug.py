"""`patchgate debug parse` as a real process on the captured outputs of all three managers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "packages"


def debug_parse(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATCHGATE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "debug", "parse", *argv],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("manager", "kind", "fixture", "expect"),
    [
        ("apt", "upgradable", "apt-dist-upgrade-jammy-edge.txt", "openssh-client"),
        ("apt", "security", "apt-list-upgradable-jammy.txt", "libc6"),
        ("apt", "installed", "apt-installed.txt", "bash"),
        ("apt", "reboot", "apt-reboot-required.txt", "required"),
        ("dnf", "upgradable", "dnf-check-update-el9.txt", "bind-libs"),
        ("dnf", "security", "dnf-updateinfo-security-el9.txt", "glibc"),
        ("dnf", "installed", "rpm-installed.txt", "bind-libs"),
        ("dnf", "reboot", "dnf-needs-restarting-required.txt", "required"),
        ("zypper", "upgradable", "zypper-list-updates-sles15.xml", "openssl-3"),
        ("zypper", "security", "zypper-list-patches-security-sles15.xml", "openssl-3"),
        ("zypper", "reboot", "zypper-needs-rebooting.txt", "required"),
    ],
)
def test_debug_parse_prints_what_was_understood_as_json(
    manager: str, kind: str, fixture: str, expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli.main import main

    assert main(["debug", "parse", manager, kind, str(FIXTURES / fixture)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == kind and "unparsed" in report
    value = report["value"]
    if kind == "upgradable":
        assert expect in {p["name"] for p in value}
    elif kind == "reboot":
        assert value["required"] is True
    else:
        assert expect in value


@pytest.mark.parametrize(
    ("manager", "kind", "fixture"),
    [
        ("apt", "upgradable", "apt-dist-upgrade-bookworm.txt"),
        ("dnf", "security", "dnf5-advisory-security-f40.txt"),
        ("zypper", "upgradable", "zypper-list-updates-sles15.xml"),
    ],
)
def test_debug_parse_as_a_real_process_for_each_manager(
    manager: str, kind: str, fixture: str, tmp_path: Path
) -> None:
    done = debug_parse(manager, kind, str(FIXTURES / fixture), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["manager"] == manager and report["value"] and report["unparsed"] == []


def test_unparsed_lines_are_reported_not_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli.main import main

    main(["debug", "parse", "apt", "upgradable", str(FIXTURES / "apt-dist-upgrade-jammy-edge.txt")])
    assert json.loads(capsys.readouterr().out)["unparsed"] == [
        "this line is not something apt prints"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("pacman", "upgradable", "x"), "unknown package manager 'pacman'"),
        (("apt", "weather", "x"), "unknown kind 'weather'"),
        (("apt", "upgradable", "/nonexistent/file"), "cannot read /nonexistent/file"),
    ],
)
def test_bad_arguments_exit_1_with_a_clear_message(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli.main import main

    assert main(["debug", "parse", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_argument_as_a_real_process_exits_1(tmp_path: Path) -> None:
    done = debug_parse("pacman", "upgradable", "x", cwd=tmp_path)
    assert done.returncode == 1
    assert "unknown package manager 'pacman'" in done.stderr
