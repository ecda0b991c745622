"""CLI group: rollout (filled in by its feature)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add this group's subcommands."""
