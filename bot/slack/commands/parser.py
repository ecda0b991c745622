"""The pure ``/patch`` parser: text -> (subcommand, typed command) or a UsageError."""

from __future__ import annotations

import shlex
from typing import Any

from bot.slack import texts
from bot.slack.commands.registry import Registry, Subcommand, UsageError

# What Slack clients type instead of plain ASCII: smart quotes, and dashes made of "--".
_TRANSLATE = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2014": "--",  # em dash
        "\u2013": "--",  # en dash
        "\u2212": "-",  # minus sign
        "\u00a0": " ",  # no-break space
    }
)


def normalise(text: str) -> str:
    return text.translate(_TRANSLATE).replace("---", "--").strip()


def parse(text: str, registry: Registry) -> tuple[Subcommand, Any]:
    """Parse ``/patch`` text. Empty text is ``help``. Raises UsageError on bad input."""
    cleaned = normalise(text)
    try:
        words = shlex.split(cleaned)
    except ValueError as exc:
        raise UsageError(texts.unreadable_command(exc)) from None
    if not words:
        words = ["help"]
    name, args = words[0].lower(), words[1:]
    sub = registry.get(name)
    if sub is None:
        known = ", ".join(s.name for s in registry)
        raise UsageError(texts.unknown_subcommand(words[0], known))
    return sub, sub.parse(args)
