"""Fuzz suite settings: every target gets a bounded number of examples in the default
run (``PATCHGATE_FUZZ_EXAMPLES`` raises it for long local runs, see docs/reliability.md)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "patchgate-fuzz",
    deadline=None,  # no timed tests: a hang is caught by targets.no_hang instead
    database=None,  # no .hypothesis directory left in a clean clone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
    derandomize=bool(os.environ.get("CI")),  # fixed seed in CI, as tests/conftest.py
)  # fmt: skip
