"""A planned reboot is one INFO line in the log, not paramiko's tracebacks."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from tests.enginekit import Rig, make_plan, plan_dict
from workflows.db import Database


async def test_a_planned_reboot_is_logged_as_one_info_line(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(db)
    rig.executor.publish("demo-kernel", "1.1")
    rig.executor.state.hosts["dev-01"].installed["demo-kernel"] = "1.0"
    rollout_id = await rig.start(make_plan(rings=[plan_dict()["rings"][0]]))
    with caplog.at_level(logging.INFO, logger="patchgate.engine"):
        await rig.engine().run_until_idle()
    rebooted = [h for h, call in rig.executor.calls if call == "reboot"]
    reboots = [r for r in caplog.records if "reboot" in r.getMessage()]
    assert "dev-01" in rebooted
    assert sorted((r.levelno, r.getMessage()) for r in reboots) == [
        (logging.INFO, f"{h}: planned reboot (rollout #{rollout_id}), waiting for a new boot")
        for h in sorted(rebooted)
    ]


def test_paramiko_transport_errors_are_not_printed_above_debug() -> None:
    # What paramiko's transport thread logs when a rebooting host drops the connection.
    script = textwrap.dedent(
        """
        import logging
        from bot.logging import configure_logging
        configure_logging("{level}", "text")
        transport = logging.getLogger("paramiko.transport")
        try:
            raise EOFError("Error reading SSH protocol banner")
        except EOFError:
            transport.error("Exception (client): Error reading SSH protocol banner", exc_info=True)
        logging.getLogger("patchgate.engine").info("after")
        """
    )
    quiet = subprocess.run(
        [sys.executable, "-c", script.format(level="INFO")], capture_output=True, text=True
    )
    assert "banner" not in quiet.stderr and "Traceback" not in quiet.stderr
    assert "after" in quiet.stderr
    debug = subprocess.run(
        [sys.executable, "-c", script.format(level="DEBUG")], capture_output=True, text=True
    )
    assert "Error reading SSH protocol banner" in debug.stderr
