"""Security suites: lab fixtures for the injection tests (tests/lab/fixtures.py)."""

from __future__ import annotations

from tests.lab.fixtures import lab  # noqa: F401
