"""The crash harness's step hook for ``serve`` (test-only settings): see :func:`step_hook`."""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

from bot.settings import Settings
from workflows.engine import StepHook

log = logging.getLogger("patchgate.serve")


def step_hook(settings: Settings) -> StepHook | None:
    """The step hook of the engine and the outbox worker for the crash harness
    (test-only settings), or None.

    PATCHGATE_TEST_STEP_LOG appends each persisted step's name to a file (to enumerate
    the kill points); PATCHGATE_TEST_KILL_AT=STEP[:N] SIGKILLs this process right after
    the N-th step of that name, as a power cut would: no cleanup, no lock release. The
    outbox worker's steps are ``outbox.claimed`` and ``outbox.returned``.
    """
    if settings.test_kill_at is None and settings.test_step_log is None:
        return None
    target, count = None, 0
    if settings.test_kill_at is not None:
        name, _, nth = settings.test_kill_at.partition(":")
        target, count = name, int(nth or 1)
    log_path = settings.test_step_log
    seen: Counter[str] = Counter()

    def hook(step: str) -> None:
        seen[step] += 1
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as out:
                out.write(step + "\n")
        if step == target and seen[step] == count:
            log.warning("PATCHGATE_TEST_KILL_AT=%s reached: SIGKILL", settings.test_kill_at)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
