"""A ticket's "last lines of output" are what the failure left on screen, not progress."""

from __future__ import annotations

from workflows.models import HostRun, Ring, Rollout
from workflows.tickets import Cause, host_ticket_text

# apt-get's output as a detached command captures it (carriage returns and the
# Progress bar's cursor codes included), ending in a failed postinst.
APT_OUTPUT = (
    "Reading package lists... 0%\rReading package lists... 100%\rReading package lists... Done\n"
    "0% [Working]\n"
    "Preparing to unpack .../demo-app_1.1_all.deb ...\n"
    "(Reading database ... \r(Reading database ... 5%\r(Reading database ... 45%\r"
    "(Reading database ... 95%\r(Reading database ... 45123 files and directories "
    "currently installed.)\n"
    + "".join(
        f"\x1b7\x1b[0;23r\x1b8\x1b[1AProgress: [{n:3d}%] [{'#' * (n // 10)}{'.' * 10}]\n"
        for n in range(0, 100, 5)
    )
    + "Unpacking demo-app (1.1) over (1.0) ...\n"
    "Setting up demo-app (1.1) ...\n"
    "dpkg: error processing package demo-app (--configure):\n"
    " installed demo-app package post-installation script subprocess returned error "
    "exit status 1\n"
    "E: Sub-process /usr/bin/dpkg returned an error code (1)\n"
)


def test_a_tickets_output_tail_drops_dpkg_and_apt_progress_lines() -> None:
    run = HostRun(
        host_name="web-01",
        state="rolled_back",
        platform="debian-12-amd64",
        exit_code=100,
        output_tail=APT_OUTPUT,
    )
    rollout = Rollout(id=3, plan_name="weekly", patchset={"debian-12-amd64": {"demo-app": "1.1"}})
    _, description = host_ticket_text(
        run=run, rollout=rollout, ring=Ring(name="dev"), cause=Cause.ROLLED_BACK
    )
    tail = description.split("{noformat}")[1].strip().splitlines()
    assert tail == [
        "Reading package lists... Done",
        "Preparing to unpack .../demo-app_1.1_all.deb ...",
        "(Reading database ... 45123 files and directories currently installed.)",
        "Unpacking demo-app (1.1) over (1.0) ...",
        "Setting up demo-app (1.1) ...",
        "dpkg: error processing package demo-app (--configure):",
        " installed demo-app package post-installation script subprocess returned error "
        "exit status 1",
        "E: Sub-process /usr/bin/dpkg returned an error code (1)",
    ]
