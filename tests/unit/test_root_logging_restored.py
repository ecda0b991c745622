"""The suite's root logger outlives a CLI command run in-process (tests/conftest.py):
the first test sets logging up as a command does, the second (run after it, in file
order) finds none of that left. Without the fixture, every later log record failed on
the first test's closed stderr ("--- Logging error ---") and was lost from CI's output."""

from __future__ import annotations

import logging
import sys

from bot.logging import configure_logging

_ADDED: list[logging.Handler] = []


def test_a_command_sets_up_logging_on_the_tests_stderr() -> None:
    configure_logging("CRITICAL", "text")
    root = logging.getLogger()
    _ADDED.extend(h for h in root.handlers if getattr(h, "stream", None) is sys.stderr)
    assert _ADDED and root.level == logging.CRITICAL


def test_the_next_test_finds_the_root_logger_as_it_was() -> None:
    assert _ADDED, "the first test runs first"
    root = logging.getLogger()
    assert not [h for h in root.handlers if h in _ADDED]
    assert root.level != logging.CRITICAL
