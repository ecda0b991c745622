"""``patchgate serve`` under cProfile, for ``bench/slack_ack.py --profile FILE``.

Profiling (of the event loop's thread) starts on SIGUSR1 and stops on SIGUSR2, which
writes the profile to ``PATCHGATE_BENCH_PROFILE``; the benchmark sends them around its
measured rounds, so start-up and the rollout's first steps stay out of the profile.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType

from bot.cli.main import main

if __name__ == "__main__":
    profile = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(os.environ["PATCHGATE_BENCH_PROFILE"])

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.exit(main(["serve"]))
